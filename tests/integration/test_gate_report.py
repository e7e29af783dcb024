"""reports/index.html and the gate's summary after a real pipeline run: self-contained, every link resolves, and
a failing run names its failing checks first; each step ends with its outcome and elapsed time."""

from __future__ import annotations

import re
from pathlib import Path

from conveyor.checks import CHECKS
from tests.conftest import Project, copy_project

LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def assert_self_contained(reports: Path) -> str:
    """The page, after checking it fetches nothing and every link it has names a file of the run."""
    page = (reports / "index.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<script" not in page
    targets = LINK.findall(page)
    missing = [t for t in targets if not (reports / t).is_file()]
    assert targets and missing == [], missing
    return page


def test_a_passing_run_writes_an_index_that_links_every_checks_report(pipeline_run: Project) -> None:
    reports = pipeline_run.root / "reports"
    page = assert_self_contained(reports)
    targets = set(LINK.findall(page))
    assert {"drift.html", "fairness.html", "quality/index.html", "plots/roc.png"} <= targets
    assert {f"{check}.json" for check in CHECKS} <= targets
    assert re.search(r"<h1 class=\"pass\">gate passed: 6 checks</h1>", page)
    assert all(f'<section id="{check}">' in page for check in CHECKS)
    explained = pipeline_run.run("gate", "--explain").stdout.splitlines()
    assert explained[:2] == ["gate passed: 6 checks", "Registered as version 1 (candidate)."]
    assert (reports / "gate.md").read_text().startswith("### ✅ Conveyor gate passed: 6 checks\n")


def test_a_failing_run_names_its_failing_checks_first_and_says_the_gate_decides(
    pipeline_run: Project, tmp_path: Path
) -> None:
    project = copy_project(pipeline_run, tmp_path / "project")
    project.write_params(
        {
            "gates": {
                "evaluate": {"roc_auc": {"min": 0.99, "label": "ROC AUC"}},
                "fairness": {"equalized_odds_difference": {"max": 0.001, "label": "equalized-odds difference"}},
            }
        }
    )
    evaluate = project.run("evaluate")  # a failed check exits 0: the gate decides
    assert re.fullmatch(r"evaluate: FAILED \(the gate decides\) in [\d.]+ s", evaluate.stdout.splitlines()[-1])
    project.run("fairness")
    gate = project.run("gate", check=False)
    assert gate.returncode == 1
    out = gate.stdout.splitlines()  # MLflow says where the run is first
    start = out.index("gate FAILED: evaluate, fairness")
    assert out[start + 1] == "Nothing registered." and out[start + 3].startswith("  FAIL  evaluate ")
    assert re.fullmatch(r"gate: FAILED in [\d.]+ s", out[-1])
    page = assert_self_contained(project.root / "reports")
    assert '<h1 class="fail">gate FAILED: evaluate, fairness</h1>' in page
    statuses = re.findall(r'<tr class="(\w+)"><td>\w+</td><td>(\w+)</td>', page)
    failing = [check for status, check in statuses if status == "fail"]
    assert statuses[: len(failing)] == [("fail", c) for c in failing] and set(failing) == {"evaluate", "fairness"}
    table = (project.root / "reports" / "gate.md").read_text()
    assert table.startswith("### ❌ Conveyor gate FAILED: evaluate, fairness\n")
    assert "| ❌ fail | evaluate | **ROC AUC** |" in table and "ROC AUC = " not in table  # said once, in its row
