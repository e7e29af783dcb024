"""The decision policy applies per-group thresholds, alike to a DataFrame (the checks) and to records (serving),
round-trips through decision.json, and is read (`read`) only when every field is what params.yaml allows."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.config import Settings
from conveyor.data import frames
from conveyor.decision import DECISION_FILE, Decision, read
from conveyor.errors import ConveyorError
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


def _read(tmp_path: Path, settings: Settings, policy: object) -> Decision:
    (tmp_path / DECISION_FILE).write_text(json.dumps(policy))
    return read(tmp_path, settings)


def test_read_accepts_the_policy_the_mitigation_writes_and_leaves_missing_groups_to_the_global_threshold(
    tmp_path: Path, settings: Settings
) -> None:
    """The mitigation gives only groups large enough to fit a threshold of their own; the others (here every
    category but White and Black) get the global threshold, as `limit` applies it."""
    policy = {"threshold": 0.5, "group_feature": "race", "group_thresholds": {"White": 0.4, "Black": 1}}
    decision = _read(tmp_path, settings, policy)
    assert decision == Decision(threshold=0.5, group_feature="race", group_thresholds={"White": 0.4, "Black": 1.0})
    assert [decision.limit({"race": g}) for g in ("White", "Black", "Other", None)] == [0.4, 1.0, 0.5, 0.5]
    assert _read(tmp_path, settings, {"threshold": 0}) == Decision(threshold=0.0)
    assert _read(tmp_path, settings, {"threshold": 1, "group_feature": None, "group_thresholds": {}}).threshold == 1


GROUPED = {"threshold": 0.5, "group_feature": "race"}
TAMPERED = {
    "a string threshold": ({"threshold": "0.5"}, 'threshold = "0.5" is invalid: expected a number from 0 to 1.'),
    "a boolean threshold": ({"threshold": True}, "threshold = true is invalid: expected a number from 0 to 1."),
    "a threshold above 1": ({"threshold": 7}, "threshold = 7 is invalid: expected a number from 0 to 1."),
    "a negative threshold": ({"threshold": -0.1}, "threshold = -0.1 is invalid"),
    "NaN": ({"threshold": float("nan")}, "threshold = NaN is invalid"),
    "no threshold": ({"group_feature": None}, "the key 'threshold' is missing"),
    "an unknown key": ({"threshold": 0.5, "thresholds": {}}, "the key 'thresholds' is unknown"),
    "not an object": ([0.5], "[0.5] is invalid: expected a JSON object"),
    "string group thresholds": (
        {**GROUPED, "group_thresholds": {"White": "0.4"}},
        "group_thresholds['White'] = \"0.4\" is invalid: expected a number from 0 to 1.",
    ),
    "a null group threshold": ({**GROUPED, "group_thresholds": {"White": None}}, "group_thresholds['White'] = null"),
    "a list of group thresholds": (
        {**GROUPED, "group_thresholds": [0.4, 0.6]},
        "group_thresholds = [0.4, 0.6] is invalid: expected a JSON object of group to threshold.",
    ),
    "a group threshold of 5": (
        {**GROUPED, "group_thresholds": {"White": 5.0}},
        "group_thresholds['White'] = 5.0 is invalid: expected a number from 0 to 1.",
    ),
    "an unknown group": (
        {**GROUPED, "group_thresholds": {"White": 0.4, "Martian": 0.1}},
        'group_thresholds key "Martian" is invalid: expected a category of race in params.yaml '
        "(Amer-Indian-Eskimo, Asian-Pac-Islander, Black, Other, White).",
    ),
    "a numeric group feature": (
        {**GROUPED, "group_feature": "age"},
        'group_feature = "age" is invalid: expected null or a categorical feature of params.yaml',
    ),
    "group thresholds without a feature": (
        {"threshold": 0.5, "group_thresholds": {"White": 0.4}},
        'group_thresholds = {"White": 0.4} is invalid: expected {} when group_feature is null.',
    ),
}


@pytest.mark.parametrize("case", TAMPERED)
def test_read_refuses_a_policy_with_one_sentence_naming_field_value_and_expectation(
    case: str, tmp_path: Path, settings: Settings
) -> None:
    policy, message = TAMPERED[case]
    with pytest.raises(ConveyorError) as raised:
        _read(tmp_path, settings, policy)
    assert str(raised.value).startswith(f"{tmp_path / DECISION_FILE}: ")
    assert message in str(raised.value)
    assert str(raised.value).count(". ") == 0 and str(raised.value).endswith(".")


def test_read_names_a_missing_or_unreadable_file(tmp_path: Path, settings: Settings) -> None:
    with pytest.raises(ConveyorError, match=r"decision\.json: missing; expected the decision policy"):
        read(tmp_path, settings)
    (tmp_path / DECISION_FILE).write_text("{threshold: 0.5}")
    with pytest.raises(ConveyorError, match=r"decision\.json: not valid JSON"):
        read(tmp_path, settings)
