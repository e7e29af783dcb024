"""`conveyor monitor` as a user runs it: bad input is one sentence, exit 2, and no earlier verdict left behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import CONVEYOR, ROOT


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "error: --log is missing; expected the prediction log's folder"),
        (["--log", "nowhere"], "error: --log = 'nowhere' is not a folder; expected the prediction log's folder."),
        (["--log", ".", "--window", "soon"], "error: --window = 'soon' is not a duration"),
        (["--log", ".", "--params", "missing.yaml"], "error: missing.yaml: the configuration file does not exist."),
    ],
)
def test_bad_input_exits_2_with_one_sentence_and_no_stale_verdict(tmp_path: Path, args: list[str], says: str) -> None:
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    reports = tmp_path / "reports"
    reports.mkdir()
    for name in ("monitor.json", "monitor.html", "monitor.prom"):
        (reports / name).write_text("from an earlier run")
    done = subprocess.run([CONVEYOR, "monitor", *args], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stderr.startswith(says), done.stderr
    assert done.stderr.count("\n") == 1 and not any(reports.iterdir())
