"""The behaviour check with the shipped policy (params.yaml gates.behaviour) on tiny hand-written models
(tests/support/behaviour.py): a sensible one passes, each one that breaks a rule fails with its sentence."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml

from conveyor.checks import behaviour
from conveyor.config import Settings, human, load_settings
from conveyor.decision import Decision
from conveyor.errors import ConveyorError
from tests.factories import synthetic
from tests.support.behaviour import AlwaysYes, EducationHurts, ReadsCountry, Sensible

PLAIN = Decision(threshold=0.5)


@pytest.fixture(scope="module")
def rows(settings: Settings) -> pd.DataFrame:
    return synthetic(settings, 800, seed=3)[list(settings.data.features)]


def test_a_sensible_model_passes_every_rule(settings: Settings, rows: pd.DataFrame) -> None:
    result = behaviour.assess(settings, Sensible(), PLAIN, rows)
    assert result.passed, result.failures
    m = result.metrics
    assert m["rows"] == settings.gates.behaviour.rows
    assert m["invariance"]["native_country"]["mean_shift"] == 0.0
    assert m["directional"]["education_num"]["share_not_against"] == 1.0
    assert all(case["passed"] for case in m["cases"].values()) and len(m["cases"]) == 4
    assert [j.label for j in result.judgements] == [
        "mean probability shift (native_country)",
        "rows not against the expected direction (education_num + 2 → score up)",
        "cases given their expected label",
    ]


def test_a_model_that_reads_an_invariant_feature_fails(settings: Settings, rows: pd.DataFrame) -> None:
    result = behaviour.assess(settings, ReadsCountry(), PLAIN, rows)
    shift = result.metrics["invariance"]["native_country"]["mean_shift"]
    assert not result.passed
    shown = human(shift, settings.gates.behaviour.invariance_shift.digits)
    assert f"mean probability shift (native_country) = {shown} > 0.03" in result.failures, result.failures


def test_a_model_going_against_a_declared_direction_fails(settings: Settings, rows: pd.DataFrame) -> None:
    result = behaviour.assess(settings, EducationHurts(), PLAIN, rows)
    share = result.metrics["directional"]["education_num"]["share_not_against"]
    assert not result.passed and share < 0.85
    sentence = f"rows not against the expected direction (education_num + 2 → score up) = {share:.1%} < 85%"
    assert sentence.replace(".0%", "%") in result.failures


def test_a_model_that_gets_a_hand_written_case_wrong_fails_naming_it(settings: Settings, rows: pd.DataFrame) -> None:
    result = behaviour.assess(settings, AlwaysYes(), PLAIN, rows)
    assert not result.passed
    assert (
        "case 'teenager working part time' expects <=50K but the model says >50K (P = 0.900, threshold 0.500)"
        in result.failures
    )
    assert "cases given their expected label = 50% < 100%" in result.failures


def test_the_decision_policy_decides_the_cases(settings: Settings, rows: pd.DataFrame) -> None:
    """A group threshold above a case's probability turns its label, as serving would."""
    feature = settings.data.sensitive_features[0]
    group = settings.gates.behaviour.cases[2].record[feature]
    strict = Decision(threshold=0.5, group_feature=feature, group_thresholds={group: 0.999})
    result = behaviour.assess(settings, Sensible(), strict, rows)
    assert any(
        f.startswith("case 'married doctorate in a professional specialty' expects >50K") for f in result.failures
    )


def test_the_rows_do_not_depend_on_their_order(settings: Settings, rows: pd.DataFrame) -> None:
    shuffled = rows.sample(frac=1.0, random_state=5).reset_index(drop=True)
    first = behaviour.assess(settings, ReadsCountry(), PLAIN, rows)
    assert behaviour.assess(settings, ReadsCountry(), PLAIN, shuffled).metrics == first.metrics
    pd.testing.assert_frame_equal(behaviour.sample(rows, 50), behaviour.sample(shuffled, 50))


def test_a_policy_naming_an_unknown_feature_is_one_sentence(tmp_path, rows: pd.DataFrame) -> None:
    from tests.conftest import ROOT

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["gates"]["behaviour"]["invariant"] = ["surname"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(
        ConveyorError, match=re.escape("gates.behaviour.invariant names 'surname', which is not a feature")
    ):
        behaviour.assess(load_settings(tmp_path / "params.yaml"), Sensible(), PLAIN, rows)


def test_cases_are_scored_as_records_arrive(settings: Settings) -> None:
    """The cases go through the serving frame builder: ints and categories typed as the Pipeline expects."""
    frame = behaviour.to_frame([c.record for c in settings.gates.behaviour.cases], settings.data.features)
    assert list(frame.columns) == list(settings.data.features) and len(frame) == 4
    assert np.issubdtype(frame["education_num"].dtype, np.floating)
