"""The decision policy: probability -> label. A global threshold, optionally one per group of a sensitive
feature (set by the fairness mitigation). Kept apart from the model so every runtime applies it the same way:
the checks label a DataFrame, serving labels records (dicts), and both go through `limit`, the one rule."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

DECISION_FILE = "decision.json"

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Decision:
    threshold: float
    group_feature: str | None = None
    group_thresholds: dict[str, float] = field(default_factory=dict)

    def limit(self, record: Record) -> float:
        """The threshold for one record: its group's, else the global one (also for an unknown or missing group).
        Plain Python, no numpy: serving calls it once per single-record request."""
        if not self.group_feature:
            return self.threshold
        return self.group_thresholds.get(record[self.group_feature], self.threshold)

    def label(self, record: Record, probability: float) -> int:
        """One record's label (the single-record serving path)."""
        return int(probability >= self.limit(record))

    def limits(self, records: Sequence[Record]) -> np.ndarray:
        """`limit` for each record."""
        if not self.group_feature:
            return np.full(len(records), self.threshold, dtype=np.float64)
        return np.fromiter(map(self.limit, records), dtype=np.float64, count=len(records))

    def record_labels(self, records: Sequence[Record], proba: np.ndarray) -> np.ndarray:
        """Each record's label, for the probabilities in `proba` (a batch of records)."""
        return (proba >= self.limits(records)).astype(np.int64)

    def thresholds(self, frame: pd.DataFrame) -> np.ndarray:
        """`limit` for each row of a DataFrame (a missing group is NaN there, None in a record: both fall back)."""
        if not self.group_feature:
            return self.limits([{}] * len(frame))
        return self.limits(frame[[self.group_feature]].astype(object).to_dict("records"))

    def labels(self, frame: pd.DataFrame, proba: np.ndarray) -> np.ndarray:
        """Each row's label, for the probabilities in `proba`."""
        return (proba >= self.thresholds(frame)).astype(np.int64)

    def save(self, folder: Path) -> Path:
        target = folder / DECISION_FILE
        target.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return target

    @classmethod
    def load(cls, folder: Path) -> Decision:
        return cls(**json.loads((folder / DECISION_FILE).read_text()))
