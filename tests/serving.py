"""The serving tests' model: a bundle as `conveyor gate` exports it (model.skops, decision.json, metadata.json),
fitted on the real training split and written by the real export code, plus the holdout as API records."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import pandas as pd
import skops.io

from conveyor import bundle
from conveyor.config import Settings
from conveyor.data import frames
from conveyor.decision import Decision
from conveyor.paths import MODELS, TRAINED_MODEL
from conveyor.training import model

VERSION = "7"
TRAIN_INFO = {"run_id": "serve-tests", "git_commit": "0" * 40, "data_version": "serve-tests-data"}


def split(settings: Settings, data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) of the fetched training pool, split as the pipeline splits it."""
    return frames.split(frames.read_csv(data_dir / settings.data.path.name, settings), settings)


def build(settings: Settings, train: pd.DataFrame, root: Path, decision: Decision | None = None) -> Path:
    """Fit the configured Pipeline on `train` and export it under `root`; returns the models/ folder."""
    x, y = frames.features_and_target(train, settings)
    pipeline = model.build_pipeline(settings).fit(x, y)
    trained = root / TRAINED_MODEL
    trained.mkdir(parents=True)
    skops.io.dump(pipeline, trained / bundle.MODEL_FILE)
    (decision or Decision(threshold=settings.model.decision_threshold)).save(trained)
    with contextlib.chdir(root):
        bundle.export(settings, VERSION, TRAIN_INFO, {"roc_auc": 0.9})
    return root / MODELS


def records(frame: pd.DataFrame, settings: Settings) -> list[dict[str, Any]]:
    """Rows as a client sends them in JSON: integers for int features, null for missing values."""
    out = []
    for row in frame[list(settings.data.features)].to_dict("records"):
        record = {}
        for name, feature in settings.data.features.items():
            value = row[name]
            if isinstance(value, float) and math.isnan(value):
                record[name] = None
            elif feature.type == "int":
                record[name] = int(value)
            else:
                record[name] = value
        out.append(record)
    return out
