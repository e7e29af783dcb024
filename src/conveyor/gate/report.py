"""The gate's report: one table, rendered three ways. Markdown for the PR comment and $GITHUB_STEP_SUMMARY, plain
text for the terminal (`conveyor gate --explain`, the end of `make run`), HTML for reports/index.html.

One row per judged threshold (CheckResult.judgements) with its value, limit and margin (positive: headroom), each
with its unit; failures first, then warnings, information, passes. A failure no threshold judged (a check that did
not run, a broken expectation) gets a row of its own, and a check with neither still gets one, so every check
appears. Drift with no new batch is information, never a pass. Each row links to its check's report."""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from conveyor.checks.result import CheckResult
from conveyor.config import Judgement, human
from conveyor.paths import REPORTS

Status = Literal["fail", "warn", "info", "pass"]
ORDER: dict[Status, int] = {"fail": 0, "warn": 1, "info": 2, "pass": 3}
MARK: dict[Status, str] = {
    "fail": "❌ fail",
    "warn": "⚠️ warn",
    "info": "\N{INFORMATION SOURCE}\ufe0f info",
    "pass": "✅ pass",
}
WORD: dict[Status, str] = {"fail": "FAIL", "warn": "warn", "info": "info", "pass": "pass"}
COLUMNS = ("result", "check", "measure", "value", "limit", "margin", "report")
NOT_JUDGED = "not judged: no new batch"
PLOTS_PAGE = REPORTS / "plots.html"  # `dvc plots diff` of this branch against main, uploaded with the reports
PLOTS_TEXT = "ROC/PR/calibration: this branch vs main"
CONTAINERS = {"features", "columns", "groups", "cases", "directional"}  # report keys that only group others
NOTE_ROOM = 120  # characters kept for the note that says what a cut left out
# A link target for a report path (`reports/fairness.html`), or None for no link.
Link = Callable[[str], str | None]


@dataclass(frozen=True)
class Row:
    status: Status
    check: str
    measure: str
    value: str = ""
    limit: str = ""
    margin: str = ""
    report: str | None = None  # the check's report, a path such as reports/fairness.html


@dataclass(frozen=True)
class Table:
    """What the gate came to: every check's result, the verdict, the version registered, or where the run stopped
    (stage, why) when the gate did not judge it."""

    results: list[CheckResult]
    passed: bool
    version: str | None = None
    stopped: tuple[str, str] | None = None

    @property
    def failing(self) -> list[str]:
        return [r.check for r in self.results if not r.passed]

    def heading(self) -> str:
        """`gate FAILED: latency, fairness`, `gate passed: 6 checks`, or where the run stopped."""
        if self.stopped is not None:
            return f"run stopped at {self.stopped[0]}: the gate did not judge it, nothing registered"
        if self.passed:
            return f"gate passed: {len(self.results)} checks"
        return f"gate FAILED: {', '.join(self.failing) or 'no check failed, yet the gate did not pass'}"

    def outcome(self) -> str:
        """The sentence under the heading; where the run stopped says why, unless a failure row says it."""
        if self.stopped is not None:
            said = any(self.stopped[1] in r.failures for r in self.results)
            return "" if said else f"{self.stopped[0]}: {self.stopped[1]}"
        if self.passed:
            return f"Registered as version {self.version} (`candidate`)." if self.version else "Nothing registered."
        return "Nothing registered."

    def rows(self) -> list[Row]:
        """Failures first, then warnings, information and passes; in check order within each."""
        rows = [row for result in self.results for row in _rows(result)]
        return sorted(rows, key=lambda row: ORDER[row.status])

    def warnings(self) -> list[tuple[Status, str, str]]:
        """(warn or info, check, warning) for every warning no row already says; a check not judged (drift with no
        new batch) says why as information."""
        said = {j.failure for r in self.results for j in r.judgements}
        return [
            ("info" if not_judged(r) else "warn", r.check, w) for r in self.results for w in r.warnings if w not in said
        ]


def report_of(result: CheckResult) -> str:
    """The report a row links to: the check's first HTML page, else its first artifact, else its JSON."""
    pages = [a for a in result.artifacts if a.endswith(".html")]
    return (pages or result.artifacts or [(REPORTS / f"{result.check}.json").as_posix()])[0]


def _judged(result: CheckResult, judgement: Judgement) -> Row:
    """A broken threshold is a failure when it failed the check, a warning when it did not (drift, warn policy)."""
    status: Status = "pass" if judgement.passed else ("warn" if result.passed else "fail")
    value, limit, margin = judgement.figures()
    return Row(status, result.check, judgement.label, value, limit, margin, report_of(result))


def not_judged(result: CheckResult) -> bool:
    """A check that measured but judged nothing: drift with no new batch."""
    return result.metrics.get("judged") is False and result.passed


def _rows(result: CheckResult) -> list[Row]:
    link = report_of(result)
    if not_judged(result):
        # drift with no new batch: the holdout against the pool it came from says nothing about drift
        share, limit = result.metrics.get("drifted_share"), result.thresholds.get("drifted_share") or {}
        value = human(share, limit.get("digits", 2)) if isinstance(share, int | float) else ""
        measure = f"drifted columns share (window = {result.metrics.get('window', 'holdout')})"
        return [Row("info", result.check, measure, value, NOT_JUDGED, "", link)]
    rows = [_judged(result, j) for j in result.judgements]
    judged = {j.failure for j in result.judgements}
    rows += [Row("fail", result.check, f, report=link) for f in result.failures if f not in judged]
    if not rows:
        rows.append(Row("pass" if result.passed else "fail", result.check, "no threshold judged", report=link))
    return rows


def labels(results: list[CheckResult]) -> dict[str, str]:
    """Metric name -> the label its params.yaml threshold gives it, from the judged thresholds
    (`equalized_odds_difference` -> `equalized-odds difference`, whatever subject it was judged for)."""
    found = {}
    for judgement in (j for r in results for j in r.judgements):
        name, _, subject = judgement.metric.partition("[")
        found[name] = judgement.label.removesuffix(f" ({subject.removesuffix(']')})") if subject else judgement.label
    return found


def readable(key: str, known: Mapping[str, str]) -> str:
    """A metric's dotted path in a report as people read it: `features.race.equalized_odds_difference` ->
    `equalized-odds difference (race)`; its threshold's label, else its words; the path's names, not its
    containers, say of what."""
    *path, name = key.split(".")
    subject = [part for part in path if part not in CONTAINERS]
    shown = known.get(name) or name.replace("_", " ")
    return f"{shown} ({', '.join(subject)})" if subject else shown


def local_link(path: str) -> str:
    """A report as a path from the working directory: reports/fairness.html."""
    return path


def ci_link(env: Mapping[str, str] = os.environ) -> Link | None:
    """In GitHub Actions, every report links to the run's page at its artifacts (the `reports` artifact holds them
    all, and an artifact's own address is only known once it is uploaded); None outside Actions."""
    names = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    if not all(env.get(name) for name in names):
        return None
    server, repository, run = (env[name] for name in names)
    url = f"{server.rstrip('/')}/{repository}/actions/runs/{run}#artifacts"
    return lambda path: url


def default_link() -> Link:
    """The run's artifacts in GitHub Actions, relative paths elsewhere."""
    return ci_link() or local_link


def _md(text: str) -> str:
    return text.replace("|", "/")


def _md_link(path: str | None, link: Link) -> str:
    target = link(path) if path else None
    name = path.removeprefix(f"{REPORTS.as_posix()}/") if path else ""
    return f"[{name}]({target})" if target else name


def markdown(table: Table, link: Link | None = None) -> str:
    """The Markdown form: heading, outcome, the table (failures first), then warnings and information."""
    link = link or default_link()
    head = [f"### {'✅' if table.passed else '❌'} Conveyor {table.heading()}"]
    if table.outcome():
        head += ["", table.outcome()]
    lines = [*head, "", "| " + " | ".join(COLUMNS) + " |", "|---|---|---|--:|---|--:|---|"]
    lines += [
        f"| {MARK[r.status]} | {r.check} | {_md(f'**{r.measure}**' if r.status == 'fail' else r.measure)} | "
        f"{_md(r.value)} | {_md(r.limit)} | {_md(r.margin)} | {_md_link(r.report, link)} |"
        for r in table.rows()
    ]
    notes = [f"- {MARK[status].split()[0]} {check}: {warning}" for status, check, warning in table.warnings()]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def clip(text: str, budget: int) -> str:
    """`text` cut at a line to at most `budget` characters, with a note saying how many lines were left out. The
    Markdown form puts the heading and failures first, so a cut takes warnings and passing rows first."""
    if len(text) <= budget:
        return text
    lines = text.splitlines()
    kept: list[str] = []
    size = NOTE_ROOM
    for line in lines:
        if size + len(line) + 1 > budget:
            break
        kept.append(line)
        size += len(line) + 1
    note = f"_…{len(lines) - len(kept)} more lines not shown: a comment's length is limited; index.html has them all._"
    return "\n".join([*kept, "", note]) + "\n"


def text(table: Table, link: Link = local_link) -> str:
    """The plain-text form for a terminal: the heading, aligned rows, then warnings."""
    lines = [table.heading(), *([table.outcome().replace("`", "")] if table.outcome() else [])]
    cells = [
        [WORD[r.status], r.check, r.measure, r.value, r.limit, r.margin, (link(r.report) or "") if r.report else ""]
        for r in table.rows()
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))] if cells else []
    lines.append("")
    for row in cells:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    warnings = table.warnings()
    if warnings:
        lines += ["", *[f"  {WORD[status]}: {check}: {warning}" for status, check, warning in warnings]]
    return "\n".join(lines) + "\n"


def html_table(table: Table, link: Link) -> str:
    """The table as an HTML fragment (reports/index.html): the heading, the outcome and one row per threshold."""
    verdict = "fail" if not table.passed else "pass"
    cells = []
    for r in table.rows():
        target = link(r.report) if r.report else None
        shown = html.escape(r.report.removeprefix(f"{REPORTS.as_posix()}/")) if r.report else ""
        report = f'<a href="{html.escape(target)}">{shown}</a>' if target else shown
        values = (WORD[r.status], r.check, r.measure, r.value, r.limit, r.margin)
        cells.append(
            f'<tr class="{r.status}">'
            + "".join(f"<td>{html.escape(v)}</td>" for v in values)
            + f"<td>{report}</td></tr>"
        )
    warnings = "".join(
        f'<li class="{status}">{WORD[status]}: {html.escape(check)}: {html.escape(w)}</li>'
        for status, check, w in table.warnings()
    )
    return (
        f'<h1 class="{verdict}">{html.escape(table.heading())}</h1>\n'
        f"<p>{html.escape(table.outcome().replace('`', ''))}</p>\n"
        "<table><thead><tr>"
        + "".join(f"<th>{c}</th>" for c in COLUMNS)
        + "</tr></thead><tbody>\n"
        + "\n".join(cells)
        + "\n</tbody></table>\n"
        + (f'<ul class="warnings">{warnings}</ul>\n' if warnings else "")
    )
