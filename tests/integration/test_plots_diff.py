"""`dvc plots diff` on the plot files evaluate writes: two commits of a temporary repository, each revision's curve
on one chart, and scripts/ci/plots-diff.sh turning main's reports (a CI artifact) into an offline page."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conveyor.checks import evaluate
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

DVC = str(Path(sys.executable).with_name("dvc"))
NAMES = ("not >50K", ">50K")
PLOT_IDS = ("roc", "precision-recall", "calibration", "confusion")


def write(folder: Path, seed: int, separation: float) -> None:
    """The real writer on one model's predictions: a better model separates the classes more."""
    rng = np.random.default_rng(seed)
    y = (rng.random(3000) < 0.25).astype(np.int64)
    proba = np.clip(0.3 + separation * y + rng.normal(0, 0.2, len(y)), 0, 1)
    evaluate.write_plot_data(y, proba, (proba >= 0.5).astype(np.int64), NAMES, folder)


def sh(repo: Path, *cmd: str) -> str:
    env = os.environ | {
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Conveyor Tests",
        "GIT_AUTHOR_EMAIL": "tests@conveyor.invalid",
        "GIT_COMMITTER_NAME": "Conveyor Tests",
        "GIT_COMMITTER_EMAIL": "tests@conveyor.invalid",
        "PATH": f"{Path(DVC).parent}{os.pathsep}{os.environ['PATH']}",
    }
    done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git + DVC repository with the project's dvc.yaml and one commit of a weaker model's plot files."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, DVC, "init", "-q")
    write(root / "reports" / "plots", seed=1, separation=0.2)
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "main: the champion's plots")
    return root


def revisions_per_plot(page: str) -> dict[str, set[str]]:
    """Each chart's revisions, from the Vega-Lite specs DVC embeds in the page."""
    specs = re.findall(r"var spec = (\{.*?\});\s*vegaEmbed", page, re.DOTALL)
    found = {}
    for spec in map(json.loads, specs):
        values = spec["data"]["values"]
        found[spec["title"]["text"] if isinstance(spec["title"], dict) else spec["title"]] = {v["rev"] for v in values}
    return found


def test_dvc_plots_diff_draws_both_revisions_on_each_chart(repo: Path) -> None:
    write(repo / "reports" / "plots", seed=2, separation=0.45)
    sh(repo, "git", "commit", "-qam", "challenger: better separated")
    sh(repo, "git", "checkout", "-q", "-b", "feature")

    sh(repo, DVC, "plots", "diff", "main~1", "main", "--out", "diff")
    page = (repo / "diff" / "index.html").read_text()
    charts = revisions_per_plot(page)
    assert len(charts) == len(PLOT_IDS), charts
    assert all(revs == {"main~1", "main"} for revs in charts.values()), charts
    assert "ROC curve (holdout)" in charts and "false positive rate" in page


def test_the_ci_script_diffs_against_mains_reports_offline(repo: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline"
    shutil.copytree(repo / "reports", baseline)  # main's last CI run uploaded its reports/
    write(repo / "reports" / "plots", seed=3, separation=0.45)  # this run's model, in the workspace
    head = sh(repo, "git", "rev-parse", "HEAD")

    said = sh(repo, str(ROOT / "scripts" / "ci" / "plots-diff.sh"), str(baseline))

    assert "main's plots (4 files" in said
    page = (repo / "reports" / "plots.html").read_text()
    charts = revisions_per_plot(page)
    assert len(charts) == len(PLOT_IDS) and all(revs == {"main-ci", "workspace"} for revs in charts.values())
    assert not re.search(r"""<script[^>]+src=|<link[^>]+href=["']?(?:https?:)?//""", page)  # Vega inlined
    assert "vegaEmbed" in page and len(page) > 800_000
    assert sh(repo, "git", "tag", "--list") == "" and sh(repo, "git", "rev-parse", "HEAD") == head
    assert sh(repo, "git", "diff", "--cached", "--name-only") == ""  # the index untouched: a temporary one was used


def test_the_ci_script_shows_the_workspace_alone_without_mains_reports(repo: Path, tmp_path: Path) -> None:
    said = sh(repo, str(ROOT / "scripts" / "ci" / "plots-diff.sh"), str(tmp_path / "absent"))

    assert "no plots from main" in said
    charts = revisions_per_plot((repo / "reports" / "plots.html").read_text())
    assert len(charts) == len(PLOT_IDS) and all(revs == {"workspace"} for revs in charts.values())
