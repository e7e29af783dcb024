"""The holdout the model checks work on: its rows (`rows`), and those rows scored by a saved model (`score`):
load the model folder, predict probabilities, label them with the decision policy saved beside the model.
evaluate, fairness and the champion comparison score through here; latency times predictions on `rows`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conveyor import bundle
from conveyor import decision as decision_policy
from conveyor.config import Settings
from conveyor.data import frames
from conveyor.decision import Decision
from conveyor.paths import TRAINED_MODEL


@dataclass(frozen=True)
class Holdout:
    """The holdout rows: the features in params.yaml order, and the target as 0/1."""

    x: pd.DataFrame
    y: np.ndarray

    def records(self) -> list[dict[str, Any]]:
        """The rows as the API receives them: plain values, None where missing."""
        return self.x.astype(object).where(self.x.notna(), None).to_dict("records")


@dataclass(frozen=True)
class Scored(Holdout):
    """The holdout scored by one model: P(positive label) per row, and the labels its decision policy gives."""

    proba: np.ndarray
    decision: Decision
    labels: np.ndarray


def rows(settings: Settings) -> Holdout:
    """The holdout side of the split of the training pool plus every ingested batch."""
    _, holdout = frames.split(frames.load_training(settings), settings)
    return Holdout(*frames.features_and_target(holdout, settings))


def score(settings: Settings, folder: Path = TRAINED_MODEL, holdout: Holdout | None = None) -> Scored:
    """The holdout (`holdout`, else read with `rows`) scored by the model saved in `folder` (model.skops, loaded
    safely) under the decision policy saved with it (decision.json)."""
    data = holdout if holdout is not None else rows(settings)
    proba = bundle.load(folder, settings).predict_proba(data.x)[:, 1]
    decision = decision_policy.read(folder, settings)
    return Scored(x=data.x, y=data.y, proba=proba, decision=decision, labels=decision.labels(data.x, proba))
