"""Self-contained HTML pages for the check reports: one stylesheet inlined, figures inlined as SVG, no network.

A reviewer opens these from a downloaded CI artifact, often offline: nothing on a page may load from elsewhere
(tests/integration/test_report_screenshots.py opens each one in Chromium with the network blocked)."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure

STYLE = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#d9e2ec;--pass:#1a7f37;--pass-bg:#dafbe1;--fail:#b42318;
--fail-bg:#ffebe9;--note:#8a6100;--note-bg:#fff8c5;--head:#f0f4f8}
*{box-sizing:border-box}
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;color:var(--ink);margin:0;background:#f7f9fb;line-height:1.45}
header{background:#243b53;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:24px}
header p{margin:4px 0 0;color:#d9e2ec}
main{padding:16px 32px 40px;max-width:1200px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 20px;margin:16px 0}
h2{font-size:19px;margin:4px 0 10px}
h3{font-size:16px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:14px}
th,td{border:1px solid var(--line);padding:4px 10px;text-align:left;vertical-align:top}
th{background:var(--head)}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td{background:var(--fail-bg)}
.badge{display:inline-block;border-radius:10px;padding:1px 10px;font-size:13px;font-weight:bold}
.pass{background:var(--pass-bg);color:var(--pass)}
.fail{background:var(--fail-bg);color:var(--fail)}
.note{background:var(--note-bg);color:var(--note)}
.muted{color:var(--muted)}
ul.messages li{margin:2px 0}
figure{display:inline-block;margin:6px 12px 6px 0}
figcaption{font-size:13px;color:var(--muted)}
code{background:var(--head);padding:0 4px;border-radius:3px}
"""


def esc(value: object) -> str:
    return html.escape(str(value))


def badge(passed: bool, yes: str = "pass", no: str = "FAIL") -> str:
    return f'<span class="badge {"pass" if passed else "fail"}">{yes if passed else no}</span>'


def table(
    head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = (), failed: Iterable[bool] = ()
) -> str:
    """An HTML table of already-escaped cells; columns in `numeric` right-aligned, rows flagged in `failed` tinted."""
    right, flags = set(numeric), list(failed)
    header = "".join(f"<th>{h}</th>" for h in head)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f"<td{' class=num' if j in right else ''}>{cell}</td>" for j, cell in enumerate(row))
        tint = ' class="fail"' if i < len(flags) and flags[i] else ""
        body.append(f"<tr{tint}>{cells}</tr>")
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def svg(figure: Figure) -> str:
    """`figure` as inline SVG markup: no XML prolog, no metadata block, no external reference."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)


def page(title: str, subtitle: str, body: str) -> str:
    """A whole report page: `body` is already-escaped HTML."""
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n"
        f"<body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>\n<main>{body}</main></body></html>\n"
    )
