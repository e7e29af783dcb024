"""Prediction logs for the monitor's tests: synthetic windows from params.yaml's features, and the one helper that
writes a log (predictions with their feedback) as `conveyor serve` and `/v1/feedback` would. When serve writes the
log itself, the integration test replaces `write` with traffic through the real server."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conveyor import predictionlog
from conveyor.config import Settings
from conveyor.predictionlog import Feedback, Prediction, Role

NEGATIVE = "<=50K"


def write(
    folder: Path,
    settings: Settings,
    x: pd.DataFrame,
    proba: np.ndarray,
    predicted: np.ndarray,
    actual: np.ndarray | None,
    *,
    start: datetime,
    version: str = "1",
    role: Role = "primary",
    prefix: str = "req",
    name: str | None = None,
) -> list[str]:
    """Append one prediction a row (ids `<prefix>-<n>`, one second apart from `start`) and, where `actual` is given,
    its feedback a minute later; returns the ids. 0/1 labels become params.yaml's label strings."""
    folder.mkdir(parents=True, exist_ok=True)
    positive = settings.data.positive_label
    records: list[Prediction | Feedback] = []
    ids = []
    features = x.astype(object).where(x.notna(), None).to_dict("records")
    for n, row in enumerate(features):
        rid, when = f"{prefix}-{n}", start + timedelta(seconds=n)
        ids.append(rid)
        label = positive if predicted[n] else NEGATIVE
        records.append(Prediction(rid, stamp(when), version, role, row, float(proba[n]), label))
        if actual is not None:
            truth = positive if actual[n] else NEGATIVE
            records.append(Feedback(rid, stamp(when + timedelta(minutes=1)), truth))
    path = folder / (name or f"{prefix}-{role}{predictionlog.LOG_SUFFIX}")
    with path.open("ab") as out:
        out.writelines(predictionlog.encode(r) for r in records)
    return ids


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def synthetic(settings: Settings, rows: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Feature rows drawn across each numeric range and over two values of each category (even groups, so the
    fairness disparities stay within sampling noise); `shift` adds to numeric columns, capped at their max."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for name, feature in settings.data.features.items():
        if feature.type == "category":
            columns[name] = rng.choice(feature.values[:2], size=rows)
        else:
            values = rng.integers(int(feature.min), int(feature.max) + 1, size=rows).astype(float)
            columns[name] = np.minimum(values + (shift or {}).get(name, 0.0), feature.max)
    return pd.DataFrame(columns)


def scored(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability, predicted, actual): well separated, calibrated scores (labels drawn from them), so the live
    performance passes params.yaml's thresholds."""
    rng = np.random.default_rng(seed)
    proba = 1 / (1 + np.exp(-4 * rng.normal(-0.5, 1, rows)))
    actual = (rng.random(rows) < proba).astype(int)
    return proba, (proba >= 0.5).astype(int), actual


def training_csv(path: Path, settings: Settings, rows: int, seed: int) -> None:
    """A training pool with the target column, for the reference the monitor reads (params.yaml data.path)."""
    frame = synthetic(settings, rows, seed)
    frame[settings.data.target] = np.where(np.arange(rows) % 4 == 0, settings.data.positive_label, NEGATIVE)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
