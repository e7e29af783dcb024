"""Data loading, the stable hash split, drift windows and ingest, on small files made from the settings."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.config import Settings, load_settings
from conveyor.data import frames, ingest
from conveyor.errors import ConveyorError
from tests.conftest import ROOT
from tests.factories import synthetic


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(ROOT / "params.yaml")
    Path("data").mkdir()
    synthetic(settings, 600, seed=1).to_csv(settings.data.path, index=False)
    synthetic(settings, 250, seed=2).to_csv(settings.data.incoming_path, index=False)
    return settings.model_copy(update={"data": settings.data.model_copy(update={"ingest_rows": 100})})


def test_read_csv_types_and_missing(project: Settings) -> None:
    frame = frames.read_csv(project.data.path, project)
    for name in project.data.numeric:
        assert frame[name].dtype == np.float64
    assert frame[project.data.categorical[0]].dtype == object


def test_split_is_stable_as_data_grows(project: Settings) -> None:
    frame = frames.read_csv(project.data.path, project)
    _, holdout = frames.split(frame, project)
    grown = pd.concat([frame, frames.read_csv(project.data.incoming_path, project)], ignore_index=True)
    _, grown_holdout = frames.split(grown, project)
    assert 0.1 < len(holdout) / len(frame) < 0.3
    key = list(frame.columns)
    assert len(holdout.merge(grown_holdout, on=key)) == len(holdout)


def test_ingest_moves_next_slices_then_refuses(project: Settings) -> None:
    first = ingest.run(project)
    second = ingest.run(project)
    third = ingest.run(project)
    incoming = pd.read_csv(project.data.incoming_path)
    assert [p.name for p in (first, second, third)] == ["batch-0001.csv", "batch-0002.csv", "batch-0003.csv"]
    pd.testing.assert_frame_equal(pd.read_csv(second), incoming.iloc[100:200].reset_index(drop=True))
    assert len(pd.read_csv(third)) == 50
    with pytest.raises(ingest.NoNewData, match=r"no new data: all 250 rows .* in 3 batches; nothing to train"):
        ingest.run(project)
    assert len(frames.batches(project)) == 3


def test_ingest_of_an_exhausted_pool_is_a_clean_success(project: Settings, capsys) -> None:
    from conveyor.cli import main

    for _ in range(3):
        ingest.run(project)
    assert main(["data", "ingest", "--params", str(ROOT / "params.yaml")]) == 0
    assert "no new data" in capsys.readouterr().out


def test_windows_compare_newest_batch_with_what_came_before(project: Settings) -> None:
    reference, current, label = frames.windows(project)
    assert label == "holdout"
    ingest.run(project)
    ingest.run(project)
    reference, current, label = frames.windows(project)
    assert label == "batch-0002.csv"
    assert len(current) == 100
    assert len(reference) == 600 + 100
    assert len(frames.load_training(project)) == 800


def test_missing_file_is_one_sentence(project: Settings) -> None:
    with pytest.raises(ConveyorError, match="does not exist"):
        frames.read_csv(Path("data/nope.csv"), project)


def test_numeric_column_with_text_stays_text(project: Settings) -> None:
    """So the quality check can say 'not numbers' instead of miscounting nulls."""
    frame = pd.read_csv(project.data.path, dtype=str)
    name = project.data.numeric[0]
    frame.loc[3, name] = "n/a"
    frame.to_csv(project.data.path, index=False)
    loaded = frames.read_csv(project.data.path, project)
    assert loaded[name].dtype == object
    assert loaded[project.data.numeric[1]].dtype == np.float64
