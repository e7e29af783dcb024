"""The decision policy: probability -> label. A global threshold, optionally one per group of a sensitive
feature (set by the fairness mitigation). Kept apart from the model so every runtime applies it the same way."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DECISION_FILE = "decision.json"


@dataclass(frozen=True)
class Decision:
    threshold: float
    group_feature: str | None = None
    group_thresholds: dict[str, float] = field(default_factory=dict)

    def thresholds(self, frame: pd.DataFrame) -> np.ndarray:
        """The threshold that applies to each row."""
        if not self.group_feature:
            return np.full(len(frame), self.threshold)
        groups = frame[self.group_feature].astype(object)
        return groups.map(self.group_thresholds).fillna(self.threshold).to_numpy(dtype=np.float64)

    def labels(self, frame: pd.DataFrame, proba: np.ndarray) -> np.ndarray:
        return (proba >= self.thresholds(frame)).astype(np.int64)

    def save(self, folder: Path) -> Path:
        target = folder / DECISION_FILE
        target.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return target

    @classmethod
    def load(cls, folder: Path) -> Decision:
        return cls(**json.loads((folder / DECISION_FILE).read_text()))
