"""The reference path: the scikit-learn Pipeline on a DataFrame, exactly as training and evaluation call it.
Slow per call (pandas, input validation), but it is what every other path is checked against."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from conveyor.config import Feature

Record = Mapping[str, Any]


def to_frame(records: Sequence[Record], features: Mapping[str, Feature]) -> pd.DataFrame:
    """Records -> the frame the Pipeline was fitted on: numbers as float64, categories as str objects,
    missing values as NaN (what `data.read_csv` produces)."""
    frame = pd.DataFrame.from_records(list(records), columns=list(features))
    for name, feature in features.items():
        column = frame[name]
        if feature.type == "category":
            frame[name] = column.astype(object).where(column.notna(), np.nan)
        else:
            frame[name] = column.astype("float64")
    return frame


class PipelinePredictor:
    """Probabilities of the positive label from the fitted Pipeline, on one OpenMP thread: in a server whose
    cores are busy, HistGradientBoosting's default thread team spins at its barriers and one row can take
    seconds instead of milliseconds."""

    name = "pipeline"

    def __init__(self, pipeline: Any, features: Mapping[str, Feature]) -> None:
        self.pipeline = pipeline
        self.features = features
        self._threads = ThreadpoolController()

    def proba(self, records: Sequence[Record]) -> np.ndarray:
        frame = to_frame(records, self.features)
        with self._threads.limit(limits=1, user_api="openmp"):
            return self.pipeline.predict_proba(frame)[:, 1]
