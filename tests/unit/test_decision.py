"""The decision policy applies per-group thresholds, alike to a DataFrame (the checks) and to records (serving),
and round-trips through decision.json."""

from pathlib import Path

import numpy as np
import pandas as pd

from conveyor.config import Settings
from conveyor.data import frames
from conveyor.decision import Decision
from tests import serving


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


def test_a_record_gets_its_groups_threshold_or_the_global_one() -> None:
    decision = Decision(threshold=0.5, group_feature="g", group_thresholds={"a": 0.3, "b": 0.7})
    assert [decision.limit({"g": g}) for g in ("a", "b", "zzz", None)] == [0.3, 0.7, 0.5, 0.5]
    assert [decision.label({"g": g}, 0.4) for g in ("a", "b", "zzz", None)] == [1, 0, 0, 0]
    assert Decision(threshold=0.5).label({}, 0.5) == 1  # no group feature: the record is not read
    assert Decision(threshold=0.5).record_labels([{}, {}], np.array([0.2, 0.6])).tolist() == [0, 1]


def test_records_and_frame_label_alike_on_the_real_holdout(
    serve_split: tuple[pd.DataFrame, pd.DataFrame], settings: Settings
) -> None:
    """The same rows as a DataFrame (the checks: NaN where missing) and as API records (serving: None where
    missing), under per-group thresholds of a feature with missing values and a group left to the global one."""
    holdout = serve_split[1]
    x, _ = frames.features_and_target(holdout, settings)
    group = next(n for n, f in settings.data.features.items() if f.type == "category" and f.max_null_fraction)
    assert x[group].isna().any()
    present = x[group].dropna().unique().tolist()
    decision = Decision(threshold=0.5, group_feature=group, group_thresholds={present[0]: 0.2, present[1]: 0.8})
    proba = np.random.default_rng(0).random(len(x))
    records = serving.records(holdout, settings)

    expected = decision.labels(x, proba)
    assert decision.record_labels(records, proba).tolist() == expected.tolist()
    assert [decision.label(r, p) for r, p in zip(records, proba.tolist(), strict=True)] == expected.tolist()
    assert decision.limits(records).tolist() == decision.thresholds(x).tolist()
    assert set(decision.thresholds(x).tolist()) == {0.2, 0.5, 0.8}
    assert expected.tolist() != Decision(threshold=0.5).labels(x, proba).tolist()
