"""Test data and trained projects made from the settings, so no test needs to know the dataset."""

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io
import yaml

from conveyor import bundle
from conveyor.config import Settings, load_settings
from conveyor.data import frames
from conveyor.paths import TRAINED_MODEL
from conveyor.training import model
from tests.conftest import ROOT


def synthetic(settings: Settings, rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows that satisfy params.yaml: numbers inside their range, categories from their list."""
    rng = np.random.default_rng(seed)
    columns = {}
    for name, feature in settings.data.features.items():
        if feature.type == "category":
            columns[name] = rng.choice(feature.values, rows)
        else:
            columns[name] = rng.integers(int(feature.min), int(feature.max) + 1, rows)
    columns[settings.data.target] = rng.choice([settings.data.positive_label, "other"], rows, p=[0.25, 0.75])
    return pd.DataFrame(columns)


def csv_with_bad_cells(settings: Settings, rows: int, column: str, cells: list[int], value: str) -> None:
    """data/ in the working directory with `rows` synthetic rows, `value` (not a number) in `cells` of `column`."""
    Path("data").mkdir()
    frame = synthetic(settings, rows).astype(str)
    frame.loc[cells, column] = value
    frame.to_csv(settings.data.path, index=False)


def trained_project(root: Path, data: pd.DataFrame) -> Settings:
    """A project in `root`: the repository's params.yaml with a quick model (10 boosting rounds), `data` as the
    training pool, and a model fitted on its training split saved in artifacts/model as `conveyor train` saves
    it (model.skops; the caller saves the decision it wants). Run what uses it from `root`: its paths are relative.
    """
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["model"]["params"]["max_iter"] = 10
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    settings = load_settings(root / "params.yaml")
    with contextlib.chdir(root):
        settings.data.path.parent.mkdir(parents=True)
        data.to_csv(settings.data.path, index=False)
        train, _ = frames.split(frames.load_training(settings), settings)
        pipeline = model.build_pipeline(settings).fit(*frames.features_and_target(train, settings))
        TRAINED_MODEL.mkdir(parents=True)
        skops.io.dump(pipeline, TRAINED_MODEL / bundle.MODEL_FILE)
    return settings
