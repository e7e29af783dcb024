"""reports/index.html: the gate table and a section per check, self-contained, linking only files that exist."""

import re
from pathlib import Path

import pytest

from conveyor.checks.result import CheckResult
from conveyor.config import Threshold
from conveyor.gate import index, report

AUC = Threshold(min=0.88, label="ROC AUC")
EOD = Threshold(max=0.1, label="equalized-odds difference")
LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def links(page: str) -> list[str]:
    return LINK.findall(page)


def results(reports: Path, fair: float) -> list[CheckResult]:
    """Reports as the checks leave them: quality's pages in a folder, fairness's page, evaluate's plots."""
    (reports / "quality").mkdir(parents=True)
    (reports / "quality" / "index.html").write_text("<html></html>")
    (reports / "plots").mkdir()
    (reports / "plots" / "roc.png").write_bytes(b"png")
    (reports / "fairness.html").write_text("<html></html>")
    made = [
        CheckResult.judged("quality", [], metrics={"rows": 32561}, artifacts=["reports/quality/index.html"]),
        CheckResult.judged("evaluate", [AUC.judge("roc_auc", 0.9281)], metrics={"roc_auc": 0.9281, "curves": {}},
                           artifacts=["reports/plots/roc.png"]),
        CheckResult.judged("fairness", [EOD.judge("equalized_odds_difference", fair, "race")],
                           artifacts=["reports/fairness.html", "reports/fairness-gone.html"]),
        CheckResult.from_failures("latency", ["latency did not run: reports/latency.json is missing"]),
    ]  # fmt: skip
    for result in made[:3]:
        result.write(reports)
    return made


@pytest.mark.parametrize("fair", [0.05, 0.19])
def test_the_page_is_self_contained_and_links_only_files_that_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fair: float
) -> None:
    monkeypatch.chdir(tmp_path)
    reports = Path("reports")
    made = results(reports, fair)
    if fair < 0.1:
        made = made[:3]  # the passing run: every check ran
    table = report.Table(made, passed=all(r.passed for r in made), version="5" if fair < 0.1 else None)
    page = index.write(table, reports).read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "<style>" in page and "<link" not in page  # the style is inline
    found = links(page)
    assert found and all((reports / target).is_file() for target in found), found
    assert "fairness-gone.html" not in found and "latency.json" not in found  # listed, but not there
    assert {"quality/index.html", "plots/roc.png", "fairness.html", "evaluate.json"} <= set(found)
    assert f"<title>Conveyor: {table.heading()}</title>" in page
    heading = page[page.index("<h1") : page.index("</h1>")]
    if fair < 0.1:
        assert heading.endswith(">gate passed: 3 checks") and "Registered as version 5 (candidate)." in page
    else:
        assert heading.endswith(">gate FAILED: fairness, latency") and "Nothing registered." in page
        first = re.search(r'<tr class="(\w+)"><td>FAIL</td><td>(\w+)</td><td>([^<]*)</td>', page)
        assert first is not None and first.groups() == ("fail", "fairness", "equalized-odds difference (race)")
    value, limit, margin = EOD.judge("equalized_odds_difference", fair, "race").figures()
    assert f"<td>{value}</td><td>{limit}</td><td>{margin}</td>" in page
    assert '<section id="evaluate"><h2>evaluate: passed</h2>' in page
    assert "<td>roc auc</td><td>0.9281</td>" in page and "curves" not in page  # figures, not breakdowns


def test_pages_other_steps_add_are_linked_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    reports = Path("reports")
    table = report.Table(results(reports, 0.05)[:3], passed=True, version="5")
    assert "plots.html" not in index.render(table, reports)
    (reports / "plots.html").write_text("<html></html>")
    page = index.render(table, reports)
    assert '<a href="plots.html">ROC/PR/calibration: this branch vs main</a>' in page
