"""The fairness mitigation with real fairlearn and a real (small) model: per-group thresholds from out-of-fold
scores cut the equalized-odds difference of a model biased against one group, on rows it never saw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from fairlearn.metrics import equalized_odds_difference
from fairlearn.postprocessing._interpolated_thresholder import InterpolatedThresholder
from fairlearn.postprocessing._threshold_operation import ThresholdOperation
from sklearn.utils import Bunch

from conveyor.config import Mitigation, Settings, load_settings
from conveyor.data import frames
from conveyor.decision import Decision
from conveyor.errors import ConveyorError
from conveyor.training import fit, mitigation
from tests.conftest import ROOT

PARAMS = ROOT / "params.yaml"
ROWS = 2000


def small_settings(**mitigation: Any) -> Settings:
    """params.yaml with a fast model (few boosting rounds) and the given mitigation; the mitigated feature
    defaults to the first sensitive feature."""
    base = load_settings(PARAMS)
    mitigation = {"feature": base.data.sensitive_features[0], "cv_folds": 3, "min_group_rows": 100} | mitigation
    params = {**base.model.params, "max_iter": 20}
    return base.model_copy(
        update={"model": base.model.model_copy(update={"params": params, "mitigation": Mitigation(**mitigation)})}
    )


def biased_frame(settings: Settings, rows: int, seed: int) -> tuple[pd.DataFrame, str]:
    """Rows from the configured features where one numeric feature carries the signal and the second group of the
    first sensitive feature needs a much higher value to be positive: a model calibrated per group then selects
    that group's positives far less often at a global threshold (lower TPR), as with a group's lower scores."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for name, feature in settings.data.features.items():
        if feature.type == "category":
            columns[name] = rng.choice(feature.values, rows)
        else:
            columns[name] = rng.integers(int(feature.min), int(feature.max) + 1, rows)
    feature = settings.data.sensitive_features[0]
    favoured, disfavoured = settings.data.features[feature].values[:2]
    signal = settings.data.features[settings.data.numeric[0]]
    level, second = rng.random(rows), rng.random(rows) < 0.4
    columns[feature] = np.where(second, disfavoured, favoured)
    columns[settings.data.numeric[0]] = np.round(signal.min + level * (signal.max - signal.min))
    positive = level + rng.normal(0, 0.15, rows) > np.where(second, 0.8, 0.4)
    columns[settings.data.target] = np.where(positive, settings.data.positive_label, "other")
    return pd.DataFrame(columns), feature


@pytest.mark.parametrize("constraint", ["true_positive_rate_parity", "equalized_odds"])
def test_mitigation_cuts_equalized_odds_difference_on_unseen_rows(constraint: str) -> None:
    settings = small_settings(method="threshold_optimizer", constraint=constraint)
    rows, feature = biased_frame(settings, ROWS, seed=0)
    unseen, _ = biased_frame(settings, ROWS, seed=1)
    pipeline, decision = fit.fit(settings, rows)
    x, y = frames.features_and_target(unseen, settings)
    proba = pipeline.predict_proba(x)[:, 1]
    groups = x[feature]

    before = equalized_odds_difference(y, Decision(threshold=0.5).labels(x, proba), sensitive_features=groups)
    after = equalized_odds_difference(y, decision.labels(x, proba), sensitive_features=groups)
    assert before > 0.2
    assert after <= 0.10
    assert decision.group_feature == feature
    favoured, disfavoured = settings.data.features[feature].values[:2]
    assert set(decision.group_thresholds) == {favoured, disfavoured}
    # the disfavoured group's bar is the lower one (where each lies around 0.5 moves with the folds' draw)
    assert decision.group_thresholds[disfavoured] < decision.group_thresholds[favoured]


def test_mitigated_decision_round_trips_through_decision_json(tmp_path: Path) -> None:
    settings = small_settings(method="threshold_optimizer", cv_folds=2)
    rows, _ = biased_frame(settings, 600, seed=2)
    _, decision = fit.fit(settings, rows)
    assert decision.group_thresholds
    decision.save(tmp_path)
    loaded = Decision.load(tmp_path)
    assert loaded == decision
    x, _ = frames.features_and_target(rows, settings)
    proba = np.linspace(0, 1, len(x))
    assert np.array_equal(loaded.labels(x, proba), decision.labels(x, proba))


def test_no_mitigation_keeps_the_global_threshold() -> None:
    settings = small_settings(method="none")
    rows, _ = biased_frame(settings, 400, seed=3)
    _, decision = fit.fit(settings, rows)
    assert decision == Decision(threshold=settings.model.decision_threshold)


def test_groups_below_min_group_rows_keep_the_global_threshold() -> None:
    settings = small_settings(method="threshold_optimizer")
    rows, feature = biased_frame(settings, 1000, seed=4)
    y, scores = frames.features_and_target(rows, settings)[1], np.random.default_rng(0).random(len(rows))
    favoured, disfavoured = settings.data.features[feature].values[:2]
    groups = rows[feature].where(rows.index >= 50, "tiny")  # 50 rows, below min_group_rows = 100
    assert set(mitigation.group_thresholds(settings, scores, y, groups)) == {favoured, disfavoured}
    one_large = pd.Series(np.where(rows.index < 50, "tiny", favoured))
    assert mitigation.group_thresholds(settings, scores, y, one_large) == {}


def test_collapse_picks_the_deterministic_point_nearest_the_randomized_one() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 1, 0, 1, 0, 1, 1])
    above = ThresholdOperation(">", 0.5)  # TPR 0.75, FPR 0.25, as `>= 0.6`
    assert mitigation.collapse(Bunch(p0=1.0, operation0=above, p1=0.0, operation1=above), scores, y) == 0.6
    rarely = ThresholdOperation(">", 0.85)  # TPR 0.25, FPR 0; the mixture: TPR 0.70, FPR 0.225
    assert mitigation.collapse(Bunch(p0=0.9, operation0=above, p1=0.1, operation1=rarely), scores, y) == 0.6
    # A coin flip towards the constant 0 with probability 0.4: TPR 0.45, FPR 0.15, nearest `>= 0.7` (0.5, 0.25).
    flip = Bunch(p0=1.0, operation0=above, p1=0.0, operation1=above, p_ignore=0.4, prediction_constant=0.0)
    assert mitigation.collapse(flip, scores, y) == 0.7


def test_randomized_probability_matches_fairlearns_interpolated_thresholder() -> None:
    scores = np.random.default_rng(0).random(500)
    interpolation = Bunch(
        p0=0.3, operation0=ThresholdOperation(">", 0.4), p1=0.7, operation1=ThresholdOperation(">", 0.7),
        p_ignore=0.2, prediction_constant=0.35,
    )  # fmt: skip
    thresholder = InterpolatedThresholder(
        mitigation._Scores(), {"g": interpolation}, prefit=True, predict_method="predict_proba"
    ).fit(None, None)
    expected = thresholder._pmf_predict(scores[:, None], sensitive_features=["g"] * len(scores))[:, 1]
    assert np.allclose(mitigation._randomized_positive_probability(interpolation, scores), expected)


def test_roc_points_count_scores_at_or_above_each_threshold() -> None:
    thresholds, fpr, tpr = mitigation.roc_points(np.array([0.2, 0.5, 0.5, 0.9]), np.array([0, 1, 0, 1]))
    assert thresholds.tolist() == [0.2, 0.5, 0.9]
    assert fpr.tolist() == [1.0, 0.5, 0.0]
    assert tpr.tolist() == [1.0, 1.0, 0.5]


def test_unknown_mitigation_feature_is_one_sentence() -> None:
    settings = small_settings(method="threshold_optimizer", feature="not-a-feature")
    rows, _ = biased_frame(settings, 200, seed=5)
    with pytest.raises(ConveyorError, match=r"model\.mitigation\.feature = 'not-a-feature' is not one of"):
        fit.fit(settings, rows)


def test_threshold_optimizer_without_a_feature_is_refused_by_the_config(tmp_path: Path) -> None:
    raw = yaml.safe_load(PARAMS.read_text())
    raw["model"]["mitigation"] = {"method": "threshold_optimizer", "feature": None}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConveyorError, match=r"model\.mitigation .*needs a sensitive feature"):
        load_settings(tmp_path / "params.yaml")


def test_shuffled_training_rows_give_the_identical_model_and_decision() -> None:
    """The same rows in another order: the same thresholds, bit for bit, and the same probabilities."""
    settings = small_settings(method="threshold_optimizer")
    rows, _ = biased_frame(settings, ROWS, seed=4)
    shuffled = rows.sample(frac=1.0, random_state=1).reset_index(drop=True)
    pipeline, decision = fit.fit(settings, rows)
    shuffled_pipeline, shuffled_decision = fit.fit(settings, shuffled)
    assert decision.group_thresholds and shuffled_decision == decision
    x, _ = frames.features_and_target(rows, settings)
    assert np.array_equal(pipeline.predict_proba(x), shuffled_pipeline.predict_proba(x))


def test_canonical_order_depends_on_the_rows_not_on_their_order() -> None:
    settings = small_settings()
    rows, _ = biased_frame(settings, 300, seed=5)
    x, y = frames.features_and_target(rows, settings)
    order = np.random.default_rng(0).permutation(len(x))
    first, second = mitigation.canonical(x, y), mitigation.canonical(x.iloc[order], y[order])
    pd.testing.assert_frame_equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
