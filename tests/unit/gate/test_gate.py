"""The gate's reading of CheckResults and its table; registration is covered by the integration tests."""

import json
import os
from pathlib import Path

from conveyor.checks.result import CheckResult
from conveyor.config import Threshold
from conveyor.gate import report, verdict

AUC = Threshold(min=0.88, label="ROC AUC")
EOD = Threshold(max=0.1, label="equalized-odds difference")
P99 = Threshold(max=1.0, unit="ms", label="single-record p99")
ROWS = Threshold(min=1000, max=5_000_000, unit="rows", label="row count", digits=0)


def test_a_missing_check_counts_as_failed(tmp_path: Path) -> None:
    CheckResult.from_failures("quality", []).write(tmp_path)
    results = {r.check: r for r in verdict.collect(tmp_path)}
    assert set(results) == set(verdict.CHECKS)
    assert results["quality"].passed
    assert not results["drift"].passed
    assert results["drift"].failures == [f"drift did not run: {tmp_path / 'drift.json'} is missing"]


def test_a_model_check_older_than_the_model_counts_as_failed(tmp_path: Path) -> None:
    for check in verdict.CHECKS:
        CheckResult.from_failures(check, []).write(tmp_path)
    os.utime(tmp_path / "latency.json", (0, 0))
    results = {r.check: r for r in verdict.collect(tmp_path, trained_at=1000.0)}
    assert [c for c, r in results.items() if not r.passed] == ["latency"]
    assert results["latency"].failures[0].startswith("latency is stale: ")
    os.utime(tmp_path / "quality.json", (0, 0))  # data checks do not depend on the model
    assert results["quality"].passed


def test_result_round_trips(tmp_path: Path) -> None:
    result = CheckResult.judged("latency", [P99.judge("single_p99_ms", 40.0)], metrics={"single_p99_ms": 40.0})
    assert CheckResult.read(result.write(tmp_path)) == result
    assert not result.passed and result.failures == ["single-record p99 = 40 ms > 1 ms"]


def test_a_report_written_before_judgements_still_reads(tmp_path: Path) -> None:
    old = {"check": "evaluate", "passed": True, "metrics": {"roc_auc": 0.93}, "thresholds": {"min_roc_auc": 0.88}}
    (tmp_path / "evaluate.json").write_text(json.dumps(old | {"failures": [], "artifacts": [], "warnings": []}))
    result = CheckResult.read(tmp_path / "evaluate.json")
    assert result.passed and result.judgements == [] and result.metrics == {"roc_auc": 0.93}


def rows(table: str, check: str) -> list[list[str]]:
    """The cells of each table row of `check`."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith(f"| {check} |")
    ]


def test_failing_table_puts_failures_first_with_value_limit_margin_and_unit() -> None:
    results = [
        CheckResult.judged("quality", [ROWS.judge("rows", 30162)]),
        CheckResult.judged(
            "fairness",
            [EOD.judge("equalized_odds_difference", 0.19, "race"), EOD.judge("equalized_odds_difference", 0.05, "sex")],
            warnings=["group 'x' | tiny"],
        ),
        CheckResult.judged("evaluate", [AUC.judge("roc_auc", 0.927)]),
        CheckResult.judged("latency", [P99.judge("single_p99_ms", 6.8)]),
        CheckResult.from_failures("drift", ["drift did not run: reports/drift.json is missing"]),
    ]
    table = report.markdown(results, passed=False, version=None)
    lines = table.splitlines()
    assert lines[0] == "### Conveyor gate FAILED: nothing registered"
    assert lines[2] == "| check | result | threshold | value | limit | margin | unit |"
    body = [line for line in lines[4:] if line.startswith("| ")]
    assert [line.split("|")[2].strip() for line in body] == ["❌ fail"] * 3 + ["✅ pass"] * 3  # failures first
    assert rows(table, "fairness") == [
        ["fairness", "❌ fail", "**equalized-odds difference (race)**", "0.19", "≤ 0.1", "-0.09", ""],
        ["fairness", "✅ pass", "equalized-odds difference (sex)", "0.05", "≤ 0.1", "+0.05", ""],
    ]
    assert rows(table, "latency") == [["latency", "❌ fail", "**single-record p99**", "6.8", "≤ 1", "-5.8", "ms"]]
    assert rows(table, "drift") == [
        ["drift", "❌ fail", "**drift did not run: reports/drift.json is missing**", "", "", "", ""]
    ]
    assert rows(table, "quality") == [
        ["quality", "✅ pass", "row count", "30,162", "1,000 to 5,000,000", "+29,162", "rows"]
    ]
    assert rows(table, "evaluate") == [["evaluate", "✅ pass", "ROC AUC", "0.927", "≥ 0.88", "+0.047", ""]]
    assert "- ⚠️ fairness: group 'x' | tiny" in lines  # below the table, where a | is only text


def test_passing_table_has_a_row_per_threshold_and_names_the_version() -> None:
    results = [
        CheckResult.judged("evaluate", [AUC.judge("roc_auc", 0.88)]),  # at the limit: passes, no headroom
        CheckResult.judged("latency", [P99.judge("single_p99_ms", 0.412)]),
        CheckResult.from_failures("quality", []),  # nothing judged: the check still has its row
    ]
    table = report.markdown(results, passed=True, version="4")
    assert table.startswith("### Conveyor gate passed: registered as version 4 (`candidate`)\n")
    assert rows(table, "evaluate") == [["evaluate", "✅ pass", "ROC AUC", "0.88", "≥ 0.88", "0", ""]]
    assert rows(table, "latency") == [["latency", "✅ pass", "single-record p99", "0.412", "≤ 1", "+0.588", "ms"]]
    assert rows(table, "quality") == [["quality", "✅ pass", "no threshold judged", "", "", "", ""]]
    assert "❌" not in table and "⚠️" not in table


def test_a_breach_under_a_warn_policy_is_a_warning_row() -> None:
    share = Threshold(max=0.3, label="drifted columns share", digits=2).judge("drifted_share", 0.46)
    warned = CheckResult(check="drift", passed=True, warnings=[share.failure], judgements=[share])
    table = report.markdown([CheckResult.judged("evaluate", [AUC.judge("roc_auc", 0.9)]), warned], True, "2")
    body = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert body[0] == "| drift | ⚠️ warn | drifted columns share | 0.46 | ≤ 0.3 | -0.16 |  |"
    assert body[1].startswith("| evaluate | ✅ pass |")
