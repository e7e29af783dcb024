"""The gate's reading of CheckResults and its table; registration is covered by the integration tests."""

import json
import os
from pathlib import Path

import pytest

from conveyor.checks.result import CheckResult
from conveyor.config import Judgement, Threshold, significant
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
    """The cells of each Markdown table row of `check`."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("| ") and line.split("|")[2].strip() == check
    ]


def cells(judgement: Judgement, report_cell: str) -> list[str]:
    """A judged row's cells as the formatter prints the judgement's figures."""
    value, limit, margin = judgement.figures()
    measure = judgement.label if judgement.passed else f"**{judgement.label}**"
    return [value, limit, margin, report_cell] if judgement.passed else [measure, value, limit, margin, report_cell]


RACE = EOD.judge("equalized_odds_difference", 0.19, "race")
SEX = EOD.judge("equalized_odds_difference", 0.05, "sex")
SLOW = P99.judge("single_p99_ms", 6.8)
THROUGHPUT = Threshold(min=20000, unit="rows/s", label="batch throughput", digits=0).judge("batch", 12990.4)


def failing() -> list[CheckResult]:
    return [
        CheckResult.judged("quality", [ROWS.judge("rows", 30162)], artifacts=["reports/quality/index.html"]),
        CheckResult.judged("fairness", [RACE, SEX], warnings=["group 'x' | tiny"], artifacts=["reports/fairness.html"]),
        CheckResult.judged("evaluate", [AUC.judge("roc_auc", 0.927)]),
        CheckResult.judged("latency", [SLOW, THROUGHPUT]),
        CheckResult.from_failures("behaviour", ["behaviour did not run: reports/behaviour.json is missing"]),
    ]


def test_the_figures_carry_units_thousands_separators_and_no_scientific_notation() -> None:
    assert SLOW.figures() == ("6.8 ms", "≤ 1 ms", "-5.8 ms")
    assert THROUGHPUT.figures() == ("12,990 rows/s", "≥ 20,000 rows/s", "-7,010 rows/s")
    assert ROWS.judge("rows", 30162).figures() == ("30,162 rows", "1,000 to 5,000,000 rows", "+29,162 rows")
    assert AUC.judge("roc_auc", 0.87996).figures() == ("0.87996", "≥ 0.88", "-0.00004")  # apart at more digits
    assert Threshold(max=0.01, label="share", percent=True, digits=2).judge("d", 0.0014).figures() == (
        "0.14%",
        "≤ 1%",
        "+0.86%",
    )


def test_failing_table_names_the_failing_checks_and_puts_each_failure_first_and_once() -> None:
    table = report.markdown(report.Table(failing(), passed=False), report.local_link)
    lines = table.splitlines()
    assert lines[0] == "### ❌ Conveyor gate FAILED: fairness, latency, behaviour"
    assert lines[2] == "Nothing registered."
    assert lines[4] == "| result | check | measure | value | limit | margin | report |"
    body = [line for line in lines[6:] if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in body] == ["❌ fail"] * 4 + ["✅ pass"] * 3
    assert [line.split("|")[2].strip() for line in body[:4]] == ["fairness", "latency", "latency", "behaviour"]
    assert rows(table, "fairness") == [
        ["❌ fail", "fairness", *cells(RACE, "[fairness.html](reports/fairness.html)")],
        [
            "✅ pass",
            "fairness",
            "equalized-odds difference (sex)",
            *cells(SEX, "[fairness.html](reports/fairness.html)"),
        ],
    ]
    assert rows(table, "latency")[0] == ["❌ fail", "latency", *cells(SLOW, "[latency.json](reports/latency.json)")]
    assert rows(table, "latency")[1][3:6] == ["12,990 rows/s", "≥ 20,000 rows/s", "-7,010 rows/s"]
    assert rows(table, "behaviour") == [
        ["❌ fail", "behaviour", "**behaviour did not run: reports/behaviour.json is missing**", "", "", "", "[behaviour.json](reports/behaviour.json)"]
    ]  # fmt: skip
    assert rows(table, "quality")[0][6] == "[quality/index.html](reports/quality/index.html)"
    for judgement in (RACE, SLOW, THROUGHPUT):  # the failing row says it; nothing else repeats it
        assert judgement.failure not in table
        assert table.count(judgement.figures()[0]) == 1
    assert "- ⚠️ fairness: group 'x' / tiny" not in table and "- ⚠️ fairness: group 'x' | tiny" in lines


def test_passing_table_counts_the_checks_and_names_the_version() -> None:
    results = [
        CheckResult.judged("evaluate", [AUC.judge("roc_auc", 0.88)]),  # at the limit: passes, no headroom
        CheckResult.judged("latency", [P99.judge("single_p99_ms", 0.412)]),
        CheckResult.from_failures("quality", []),  # nothing judged: the check still has its row
    ]
    table = report.markdown(report.Table(results, passed=True, version="4"), report.local_link)
    assert table.startswith("### ✅ Conveyor gate passed: 3 checks\n\nRegistered as version 4 (`candidate`).\n")
    assert rows(table, "evaluate") == [["✅ pass", "evaluate", "ROC AUC", "0.88", "≥ 0.88", "0", "[evaluate.json](reports/evaluate.json)"]]  # fmt: skip
    assert rows(table, "latency")[0][3:6] == ["0.412 ms", "≤ 1 ms", "+0.588 ms"]
    assert rows(table, "quality")[0][:3] == ["✅ pass", "quality", "no threshold judged"]
    assert "❌" not in table and "⚠️" not in table


def test_a_breach_under_a_warn_policy_is_a_warning_row_said_once() -> None:
    share = Threshold(max=0.3, label="drifted columns share", digits=2).judge("drifted_share", 0.46)
    warned = CheckResult(check="drift", passed=True, warnings=[share.failure], judgements=[share])
    results = [CheckResult.judged("evaluate", [AUC.judge("roc_auc", 0.9)]), warned]
    table = report.markdown(report.Table(results, True, "2"), report.local_link)
    assert rows(table, "drift") == [["⚠️ warn", "drift", "drifted columns share", "0.46", "≤ 0.3", "-0.16", "[drift.json](reports/drift.json)"]]  # fmt: skip
    assert share.failure not in table
    assert table.index("| ⚠️ warn | drift") < table.index("| ✅ pass | evaluate")


def test_drift_with_no_new_batch_is_information_never_a_pass() -> None:
    holdout = CheckResult(
        check="drift",
        passed=True,
        metrics={"judged": False, "window": "holdout", "drifted_share": 0.0769},
        warnings=["no new batch: holdout vs training, informational"],
        artifacts=["reports/drift.html"],
    )
    table = report.Table([holdout, CheckResult.judged("evaluate", [AUC.judge("roc_auc", 0.9)])], True, "3")
    markdown = report.markdown(table, report.local_link)
    assert rows(markdown, "drift") == [
        [report.MARK["info"], "drift", "drifted columns share (window = holdout)", "0.08", "not judged: no new batch", "", "[drift.html](reports/drift.html)"]
    ]  # fmt: skip
    assert (
        f"- {report.MARK['info'].split()[0]} drift: no new batch: holdout vs training, informational"
        in markdown.splitlines()
    )
    assert "info  drift" in report.text(table)


def test_in_github_actions_every_report_links_to_the_runs_artifacts() -> None:
    env = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/conveyor", "GITHUB_RUN_ID": "77"}
    link = report.ci_link(env)
    assert link is not None and report.ci_link(env | {"GITHUB_RUN_ID": ""}) is None
    table = report.markdown(report.Table(failing(), passed=False), link)
    url = "https://github.com/org/conveyor/actions/runs/77#artifacts"
    assert rows(table, "fairness")[0][6] == f"[fairness.html]({url})"
    assert "](reports/" not in table


def test_the_terminal_form_is_plain_aligned_text() -> None:
    shown = report.text(report.Table(failing(), passed=False))
    lines = shown.splitlines()
    assert lines[:3] == ["gate FAILED: fairness, latency, behaviour", "Nothing registered.", ""]
    table = [line for line in lines[3:] if line.startswith("  FAIL") or line.startswith("  pass")]
    assert not any(mark in line for line in table for mark in ("|", "**", "❌"))
    assert len(table) == 7 and table[0].split()[:2] == ["FAIL", "fairness"]
    assert len({line.rindex(" reports/") for line in table}) == 1  # the report column lines up
    assert "6.8 ms" in lines[4] and "≤ 1 ms" in lines[4] and "-5.8 ms" in lines[4]


def test_a_long_table_is_clipped_at_a_line_keeping_the_heading_and_failures() -> None:
    passes = [CheckResult.judged("drift", [AUC.judge(f"c{i}", 0.9, f"column {i}") for i in range(3000)])]
    table = report.markdown(report.Table(failing() + passes, passed=False), report.local_link)
    assert len(table) > 65_536
    clipped = report.clip(table, 20_000)
    assert len(clipped) <= 20_000
    assert clipped.startswith("### ❌ Conveyor gate FAILED: fairness, latency, behaviour\n")
    assert sum(line.startswith("| ❌ fail") for line in clipped.splitlines()) == 4
    kept = sum(line.startswith("| ✅ pass") for line in clipped.splitlines())
    assert clipped.endswith(
        f"_…{3003 - kept + 2} more lines not shown: a comment's length is limited; index.html has them all._\n"
    )
    assert report.clip(clipped, 20_000) == clipped  # fmt: skip


def test_report_keys_read_as_the_gate_table_names_them() -> None:
    results = [CheckResult.judged("fairness", [RACE, SEX]), CheckResult.judged("evaluate", [AUC.judge("roc_auc", 0.9)])]
    known = report.labels(results)
    assert known == {"equalized_odds_difference": "equalized-odds difference", "roc_auc": "ROC AUC"}
    assert report.readable("features.race.equalized_odds_difference", known) == "equalized-odds difference (race)"
    assert report.readable("roc_auc", known) == "ROC AUC"
    assert (
        report.readable("features.race.groups.Black.false_positive_rate", known) == "false positive rate (race, Black)"
    )
    assert report.readable("columns.age.score", {}) == "score (age)"


@pytest.mark.parametrize(
    ("number", "sign", "shown"),
    [(12990.4, False, "12,990"), (0.92814, False, "0.9281"), (2.5e-5, False, "0.000025"), (0.0, True, "0"),
     (0.03, True, "+0.03"), (-1299.04, True, "-1,299")],
)  # fmt: skip
def test_figures_without_a_threshold_keep_four_significant_digits(number: float, sign: bool, shown: str) -> None:
    assert significant(number, sign=sign) == shown
