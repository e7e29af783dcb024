"""The decision policy: probability -> label. A global threshold, optionally one per group of a sensitive
feature (set by the fairness mitigation). Kept apart from the model so every runtime applies it the same way:
the checks label a DataFrame, serving labels records (dicts), and both go through `limit`, the one rule.
`read` is the one reader of a decision file that checks it against params.yaml."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor.config import Settings
from conveyor.errors import ConveyorError, read_json

if TYPE_CHECKING:
    import pandas as pd

DECISION_FILE = "decision.json"
FIELDS = ("threshold", "group_feature", "group_thresholds")

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


def read(folder: Path, settings: Settings) -> Decision:
    """The decision policy in `folder`, checked whole against params.yaml; ConveyorError with one sentence
    naming the field, its value and what was expected. A category of the group feature with no threshold of its
    own gets the global one (the mitigation leaves groups too small to fit so); a group that is not a category
    is refused, as is any threshold that is not a number from 0 to 1."""
    path = folder / DECISION_FILE
    data = read_json(path, "the decision policy saved with the model")
    if not isinstance(data, dict):
        raise ConveyorError(
            f"{path}: {_shown(data)} is invalid: expected a JSON object with the keys {', '.join(FIELDS)}."
        )
    for key in data:
        if key not in FIELDS:
            raise ConveyorError(f"{path}: the key {key!r} is unknown: expected only the keys {', '.join(FIELDS)}.")
    if "threshold" not in data:
        raise ConveyorError(f"{path}: the key 'threshold' is missing: expected the global threshold.")
    threshold = _probability(path, "threshold", data["threshold"])
    feature = data.get("group_feature")
    groups = data.get("group_thresholds", {})
    if not isinstance(groups, dict):
        raise ConveyorError(
            f"{path}: group_thresholds = {_shown(groups)} is invalid: expected a JSON object of group to threshold."
        )
    if feature is None:
        if groups:
            raise ConveyorError(
                f"{path}: group_thresholds = {_shown(groups)} is invalid: expected {{}} when group_feature is null."
            )
        return Decision(threshold=threshold)
    if feature not in settings.data.categorical:
        raise ConveyorError(
            f"{path}: group_feature = {_shown(feature)} is invalid: expected null or a categorical feature of "
            f"params.yaml ({', '.join(settings.data.categorical)})."
        )
    categories = settings.data.features[feature].values
    for group in groups:
        if group not in categories:
            raise ConveyorError(
                f"{path}: group_thresholds key {_shown(group)} is invalid: expected a category of {feature} in "
                f"params.yaml ({', '.join(categories)})."
            )
    thresholds = {group: _probability(path, f"group_thresholds[{group!r}]", value) for group, value in groups.items()}
    return Decision(threshold=threshold, group_feature=feature, group_thresholds=thresholds)


def _probability(path: Path, field: str, value: Any) -> float:
    """`value` as a threshold: a JSON number (not a boolean) from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConveyorError(f"{path}: {field} = {_shown(value)} is invalid: expected a number from 0 to 1.")
    return float(value)


def _shown(value: Any) -> str:
    """`value` as the file spells it."""
    return json.dumps(value)
