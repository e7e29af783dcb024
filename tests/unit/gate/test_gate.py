"""The gate's reading of CheckResults and its table; registration is covered by the integration tests."""

import os
from pathlib import Path

from conveyor.checks.result import CheckResult
from conveyor.gate import report, verdict


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
    result = CheckResult.from_failures("latency", ["single_p99_ms = 40 > 25"], metrics={"single_p99_ms": 40.0})
    assert CheckResult.read(result.write(tmp_path)) == result
    assert not result.passed


def test_table_shows_failures_headlines_and_warnings() -> None:
    results = [
        CheckResult.from_failures(
            "fairness",
            ["equalized_odds_difference[g] = 0.2 > 0.1"],
            metrics={"features": {"g": {"equalized_odds_difference": 0.2}, "h": {"equalized_odds_difference": 0.05}}},
            warnings=["group 'x' | tiny"],
        ),
        CheckResult.from_failures("evaluate", [], metrics={"roc_auc": 0.93, "holdout_rows": 10}),
    ]
    table = report.markdown(results, passed=False, version=None)
    assert "FAILED: nothing registered" in table
    fairness_row = next(line for line in table.splitlines() if line.startswith("| fairness"))
    assert "❌ fail" in fairness_row and "**equalized_odds_difference[g] = 0.2 > 0.1**" in fairness_row
    assert "features.g.equalized_odds_difference = 0.2<br>features.h.equalized_odds_difference = 0.05" in fairness_row
    assert "⚠️ group 'x' / tiny" in fairness_row
    evaluate_row = next(line for line in table.splitlines() if line.startswith("| evaluate"))
    assert "roc_auc = 0.93" in evaluate_row and "holdout_rows" not in evaluate_row
