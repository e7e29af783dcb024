"""The quality check counts only the cells of a numeric column that are not numbers, not the whole column."""

from pathlib import Path

import pandas as pd
import pytest

from conveyor.checks import quality
from conveyor.config import Settings
from conveyor.data import frames
from tests.factories import csv_with_bad_cells


def test_ten_bad_cells_are_ten_not_the_column(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    name = settings.data.numeric[0]
    csv_with_bad_cells(settings, 2000, name, list(range(10)), "abc")
    result = quality.validate(frames.read_csv(settings.data.path, settings), settings, tmp_path / "docs")
    typed = [f for f in result.failures if f.startswith(f"{name}:")]
    assert typed == [f"{name}: 10 values (0.5%) are not numbers, e.g. 'abc'"]
    assert not pd.isna(frames.read_csv(settings.data.path, settings)[name].iloc[10])
