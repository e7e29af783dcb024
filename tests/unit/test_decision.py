"""The decision policy applies per-group thresholds and round-trips through decision.json."""

from pathlib import Path

import numpy as np
import pandas as pd

from conveyor.decision import Decision


def test_global_threshold() -> None:
    frame = pd.DataFrame({"g": ["a", "b", "c"]})
    labels = Decision(threshold=0.5).labels(frame, np.array([0.49, 0.5, 0.9]))
    assert labels.tolist() == [0, 1, 1]


def test_group_thresholds_and_unknown_group_falls_back(tmp_path: Path) -> None:
    decision = Decision(threshold=0.5, group_feature="g", group_thresholds={"a": 0.3, "b": 0.7})
    frame = pd.DataFrame({"g": ["a", "b", "zzz", None]})
    assert decision.labels(frame, np.full(4, 0.4)).tolist() == [1, 0, 0, 0]
    decision.save(tmp_path)
    assert Decision.load(tmp_path) == decision
