"""The gate's report: a Markdown table fit for a PR comment and $GITHUB_STEP_SUMMARY.

One row per judged threshold (CheckResult.judgements) with its value, limit, margin (positive: headroom) and
unit, failures first; a failure no threshold judged (a check that did not run, a broken expectation) gets a row
of its own, and a check with neither still gets one, so every check appears. Warnings follow the table."""

from __future__ import annotations

from conveyor.checks.result import CheckResult
from conveyor.config import Judgement

HEADER = "| check | result | threshold | value | limit | margin | unit |"
PASS, FAIL, WARN = "✅ pass", "❌ fail", "⚠️ warn"


def _cell(text: str) -> str:
    return text.replace("|", "/")


def _judged(result: CheckResult, judgement: Judgement) -> tuple[int, str]:
    """(order, row): a broken threshold is a failure when it failed the check, a warning when it did not
    (drift under the warn policy)."""
    if judgement.passed:
        order, mark = 2, PASS
    elif result.passed:
        order, mark = 1, WARN
    else:
        order, mark = 0, FAIL
    cells = [
        result.check,
        mark,
        f"**{judgement.label}**" if order == 0 else judgement.label,
        judgement.shown(judgement.value),
        judgement.rule(),
        judgement.shown(judgement.margin, sign=True),
        judgement.unit,
    ]
    return order, "| " + " | ".join(_cell(c) for c in cells) + " |"


def _rows(result: CheckResult) -> list[tuple[int, str]]:
    rows = [_judged(result, j) for j in result.judgements]
    judged = {j.failure for j in result.judgements}
    for failure in result.failures:
        if failure not in judged:
            rows.append((0, f"| {result.check} | {FAIL} | **{_cell(failure)}** | | | | |"))
    if not rows:
        mark = PASS if result.passed else FAIL
        rows.append((0 if not result.passed else 2, f"| {result.check} | {mark} | no threshold judged | | | | |"))
    return rows


def markdown(
    results: list[CheckResult], passed: bool, version: str | None, stopped: tuple[str, str] | None = None
) -> str:
    """A table fit for a PR comment and $GITHUB_STEP_SUMMARY. `stopped`: (stage, why) when the run stopped
    before the gate judged it."""
    if stopped is not None:
        title = f"### Conveyor run stopped at {stopped[0]}: the gate did not judge it, nothing registered"
        head = [title, "", f"**{_cell(stopped[0])}**: {stopped[1]}"]
    else:
        verdict = f"passed: registered as version {version} (`candidate`)" if passed else "FAILED: nothing registered"
        head = [f"### Conveyor gate {verdict}"]
    rows = [row for result in results for row in _rows(result)]
    lines = [*head, "", HEADER, "|---|---|---|--:|---|--:|---|"]
    lines += [line for _, line in sorted(rows, key=lambda row: row[0])]  # stable: check order within each kind
    warnings = [f"- ⚠️ {r.check}: {w}" for r in results for w in r.warnings]
    if warnings:
        lines += ["", *warnings]
    return "\n".join(lines) + "\n"
