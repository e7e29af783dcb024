"""`conveyor ci comment` and `conveyor ci data` on real git and DVC: the PR comment's `dvc metrics diff` against
main's reports, and `dvc pull` from the remote named by DVC_REMOTE_URL."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from conveyor.checks.result import CheckResult
from conveyor.ci import comment, data
from conveyor.config import Settings
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def write_gate(reports: Path) -> None:
    summary = {"passed": True, "model_version": "2", "run_id": "r1", "failures": [], "checks": {}}
    (reports / "gate.json").write_text(json.dumps(summary))
    (reports / "gate.md").write_text("### Conveyor gate passed\n")


@pytest.fixture
def dvc_project(tmp_path: Path, monkeypatch) -> Path:
    """A git + DVC project with one metrics file declared in dvc.yaml, committed, the metric in the workspace."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for key, value in {"NAME": "t", "EMAIL": "t@conveyor.invalid"}.items():
        monkeypatch.setenv(f"GIT_AUTHOR_{key}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{key}", value)
    (root / "dvc.yaml").write_text(
        "stages:\n  evaluate:\n    cmd: 'true'\n    metrics:\n      - reports/evaluate.json:\n          cache: false\n"
    )
    (root / ".gitignore").write_text("/reports/\n")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, check=True, capture_output=True)
    CheckResult("evaluate", True, metrics={"roc_auc": 0.91, "groups": {"Female": {"count": 120}}}).write(
        root / "reports"
    )
    write_gate(root / "reports")
    return root


def test_metrics_diff_compares_mains_reports_with_the_workspace(dvc_project: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline"
    CheckResult("evaluate", True, metrics={"roc_auc": 0.88, "groups": {"Female": {"count": 100}}}).write(baseline)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    body = comment.render(baseline, "https://example.invalid/run/1")
    assert body.startswith(comment.MARKER + "\n### Conveyor gate passed")
    table = body.split("#### Metrics against main", 1)[1]
    assert "| report | metric | main | this change | change |" in table
    assert "| evaluate | roc auc | 0.88 | 0.91 | +0.03 |" in table  # no threshold judged it here: its words
    assert "<details>" in table and "| evaluate | count (Female) | 100 | 120 | +20 |" in table
    assert body.rstrip().endswith("https://example.invalid/run/1")
    now = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
    assert now == head and not subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout


def test_metrics_diff_without_mains_reports_says_so(dvc_project: Path, tmp_path: Path) -> None:
    assert comment.metrics_diff(tmp_path / "absent").startswith("No reports from main")


def test_data_pull_uses_the_remote_in_dvc_remote_url(dvc_project: Path, tmp_path: Path, monkeypatch) -> None:
    (dvc_project / "data").mkdir()
    (dvc_project / "data" / "rows.csv").write_text("a,b\n1,2\n")
    remote = tmp_path / "remote"
    for cmd in (
        ["dvc", "add", "-q", "data"],
        ["dvc", "remote", "add", "seed", str(remote)],
        ["dvc", "push", "-q", "-r", "seed"],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    subprocess.run(["rm", "-rf", "data", ".dvc/cache"], check=True)
    monkeypatch.setenv(data.REMOTE_ENV, str(remote))
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"] |= {"source": "dvc", "path": "data/rows.csv"}
    data.pull(Settings.model_validate(raw))
    assert (dvc_project / "data" / "rows.csv").read_text() == "a,b\n1,2\n"
    assert "ci" in (dvc_project / ".dvc" / "config.local").read_text()
    assert "ci" not in (dvc_project / ".dvc" / "config").read_text()
