"""`conveyor drift` on a copy of the fetched data: holdout vs train, then the first batch vs train."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.checks.result import CheckResult
from conveyor.config import load_settings
from tests.conftest import ROOT


def conveyor(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor.cli", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.mark.integration
def test_drift_passes_on_the_real_data_before_and_after_an_ingest(tmp_path):
    settings = load_settings(ROOT / "params.yaml")
    sources = [ROOT / settings.data.path, ROOT / settings.data.incoming_path]
    if not all(p.exists() for p in sources):
        pytest.skip("the dataset is not fetched; run `conveyor data fetch` first")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    for source, relative in zip(sources, [settings.data.path, settings.data.incoming_path], strict=True):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, tmp_path / relative)

    for window in ("holdout", "batch-0001.csv"):
        if window != "holdout":
            assert conveyor(tmp_path, "data", "ingest").returncode == 0
        run = conveyor(tmp_path, "drift")
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip().startswith("drift: passed in "), run.stderr  # then its elapsed time
        result = CheckResult.read(tmp_path / "reports" / "drift.json")
        assert result.passed and result.failures == []
        assert result.metrics["window"] == window and result.metrics["judged"] == (window != "holdout")
        if window == "holdout":  # nothing new: informational, no verdict
            assert result.judgements == [] and result.warnings[0].startswith("no new batch: holdout vs training")
        else:
            assert result.warnings == [] and all(j.passed for j in result.judgements)
        assert result.metrics["drifted_count"] == 0
        assert (tmp_path / "reports" / "drift.html").stat().st_size > 0
    assert result.metrics["current_rows"] == settings.data.ingest_rows
