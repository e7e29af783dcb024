"""reports/index.html: the page a reviewer opens first. The gate table, then one section per check with its key
figures and links to its full report. Self-contained: inline CSS, no script, nothing fetched from the network;
every link is relative to reports/ and names a file that exists when the page is written."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from conveyor.checks.result import CheckResult
from conveyor.config import human, significant
from conveyor.gate.report import NOT_JUDGED, PLOTS_PAGE, PLOTS_TEXT, Link, Table, html_table, not_judged
from conveyor.paths import GATE_INDEX, REPORTS

# Pages other steps may add to reports/, linked when present: (file under reports/, what it shows).
EXTRA_PAGES = (
    (PLOTS_PAGE.name, PLOTS_TEXT),
    ("monitor.html", "live monitoring: drift and performance in production"),
)
STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 70em;
       padding: 0 1em; color: #1f2328; }
h1.pass { color: #1a7f37; } h1.fail { color: #cf222e; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #d0d7de; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td:nth-child(4), td:nth-child(5), td:nth-child(6) { white-space: nowrap; }
tr.fail td { background: #ffebe9; } tr.warn td { background: #fff8c5; } tr.info td { background: #ddf4ff; }
section { border-top: 1px solid #d0d7de; margin-top: 1.5em; }
.figures td:last-child { text-align: right; font-variant-numeric: tabular-nums; }
ul.warnings li, ul.failures li { margin: .2em 0; }
tr.fail td:first-child, li.warn { font-weight: bold; }
"""


def _figure(value: Any) -> str | None:
    """A metric as the page shows it, or None for what is no key figure (nested breakdowns, long text)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return human(value, 0)
    if isinstance(value, float):
        return significant(value)
    if isinstance(value, str) and len(value) <= 60:
        return value
    return None


def _section(result: CheckResult, link: Link) -> str:
    status = NOT_JUDGED if not_judged(result) else "passed" if result.passed else "FAILED"
    figures = [(name, _figure(value)) for name, value in result.metrics.items()]
    rows = "".join(
        f"<tr><td>{html.escape(name.replace('_', ' '))}</td><td>{html.escape(shown)}</td></tr>"
        for name, shown in figures
        if shown is not None
    )
    parts = [f'<section id="{result.check}"><h2>{result.check}: {status}</h2>']
    if rows:
        parts.append(f'<table class="figures">{rows}</table>')
    if result.failures:
        parts.append('<ul class="failures">' + "".join(f"<li>{html.escape(f)}</li>" for f in result.failures) + "</ul>")
    pages = [(path, link(path)) for path in [*result.artifacts, (REPORTS / f"{result.check}.json").as_posix()]]
    shown = [f'<a href="{html.escape(target)}">{html.escape(Path(path).name)}</a>' for path, target in pages if target]
    if shown:
        parts.append("<p>Full report: " + ", ".join(shown) + "</p>")
    return "\n".join(parts) + "\n</section>"


def render(table: Table, reports: Path = REPORTS) -> str:
    """The whole page. A link names a path from the working directory (reports/fairness.html); the page links it
    relative to itself, and only when the file exists."""
    base = reports.resolve()

    def link(path: str) -> str | None:
        target = Path(path).resolve()
        if not target.exists() or not target.is_relative_to(base):
            return None
        return target.relative_to(base).as_posix()

    extra = [
        f'<li><a href="{name}">{html.escape(what)}</a></li>' for name, what in EXTRA_PAGES if (reports / name).is_file()
    ]
    sections = "\n".join(_section(result, link) for result in table.results)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>Conveyor: {html.escape(table.heading())}</title>\n<style>{STYLE}</style></head><body>\n"
        + html_table(table, link)
        + (f"<h2>More reports</h2><ul>{''.join(extra)}</ul>\n" if extra else "")
        + sections
        + "\n</body></html>\n"
    )


def write(table: Table, reports: Path = REPORTS) -> Path:
    target = reports / GATE_INDEX.name
    target.write_text(render(table, reports), encoding="utf-8")
    return target
