"""The pull-request comment: under GitHub's length limit whatever the reports, the heading and failures kept."""

from pathlib import Path

import pytest

from conveyor.checks.result import CheckResult
from conveyor.ci import comment
from conveyor.config import Threshold
from conveyor.gate import report

SHARE = Threshold(max=0.3, label="drift score", digits=3)
CI = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/conveyor", "GITHUB_RUN_ID": "9"}


def huge_reports(reports: Path) -> None:
    """A run stopped before training, drift with thousands of judged columns: far more than a comment may hold."""
    columns = [SHARE.judge("column_score", 0.01, f"column_{i:05}") for i in range(6000)]
    broken = [SHARE.judge("column_score", 1.4, "age"), SHARE.judge("column_score", 0.9, "hours_per_week")]
    CheckResult.judged("quality", [], artifacts=["reports/quality/index.html"]).write(reports)
    CheckResult.judged("drift", broken + columns, artifacts=["reports/drift.html"]).write(reports)


def test_a_huge_report_set_stays_under_the_limit_keeping_heading_failures_and_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in CI.items():
        monkeypatch.setenv(name, value)
    huge_reports(Path("reports"))
    monkeypatch.setattr(comment, "metrics_diff", lambda baseline: "| a | b |\n" * 20_000)  # a huge diff too
    body = comment.render(tmp_path / "baseline", "https://github.com/org/conveyor/actions/runs/9")
    assert len(body) < comment.LIMIT
    lines = body.splitlines()
    assert lines[:2] == [
        comment.MARKER,
        "### ❌ Conveyor run stopped at train: the gate did not judge it, nothing registered",
    ]
    assert "| ❌ fail | drift | **drift score (age)** | 1.4 | ≤ 0.3 | -1.1 |" in body
    assert "| ❌ fail | drift | **drift score (hours_per_week)** |" in body
    assert sum("more lines not shown" in line for line in lines) == 2  # the table's passing rows and the diff
    url = "https://github.com/org/conveyor/actions/runs/9#artifacts"
    assert f"[{report.PLOTS_TEXT}]({url})" in lines
    assert (
        lines[-1]
        == "Reports (open `index.html` first) and the full logs: https://github.com/org/conveyor/actions/runs/9"
    )


def test_a_small_comment_is_whole_and_links_the_plots_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in CI:
        monkeypatch.delenv(name, raising=False)
    CheckResult.judged("quality", [Threshold(min=1000, label="row count", digits=0).judge("rows", 10)]).write(
        Path("reports")
    )
    monkeypatch.setattr(comment, "metrics_diff", lambda baseline: "No metric differs from main.\n")
    body = comment.render(tmp_path / "baseline", None)
    assert "not shown" not in body and "No metric differs from main." in body
    assert body.rstrip().endswith(f"[{report.PLOTS_TEXT}](reports/plots.html)")
