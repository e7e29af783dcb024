"""The fast path for the other estimators a fork may configure (one-hot and scaled preprocessing, from
`training.model.build_pipeline`) equals the Pipeline's `predict_proba` on the whole holdout, within the tolerance
each compiled model states: 0 (bit for bit) for the tree ensembles, 1e-12 for the linear models. The loader
serves it, re-checks it at load, and falls back to the Pipeline for anything else."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from conveyor.config import Settings
from conveyor.data import frames
from conveyor.decision import Decision
from conveyor.serve import fast, loading
from conveyor.serve.compiled import linear
from conveyor.serve.reference import PipelinePredictor
from conveyor.training import model
from tests import serving

TRAIN_ROWS = 6000  # small models: the parity does not depend on their size, the test time does
ESTIMATORS = {  # name: (class path, params, the tolerance its compiled model must state)
    "random_forest": ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 8, "random_state": 0}, 0.0),
    "extra_trees": ("sklearn.ensemble.ExtraTreesClassifier", {"n_estimators": 8, "random_state": 0}, 0.0),
    "gradient_boosting": ("sklearn.ensemble.GradientBoostingClassifier", {"n_estimators": 30, "random_state": 0}, 0.0),
    "logistic_regression": ("sklearn.linear_model.LogisticRegression", {"max_iter": 300}, 1e-12),
    "sgd_log_loss": ("sklearn.linear_model.SGDClassifier", {"loss": "log_loss", "random_state": 0}, 1e-12),
}


def with_estimator(settings: Settings, estimator: str, params: dict[str, Any]) -> Settings:
    return settings.model_copy(
        update={"model": settings.model.model_copy(update={"estimator": estimator, "params": params})}
    )


def fitted(settings: Settings, train: pd.DataFrame) -> Pipeline:
    return model.build_pipeline(settings).fit(*frames.features_and_target(train.head(TRAIN_ROWS), settings))


@pytest.fixture(scope="module")
def pipelines(settings: Settings, serve_split: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Pipeline]:
    """Each estimator fitted once for the module, behind the preprocessing the builder gives it."""
    return {
        name: fitted(with_estimator(settings, path, params), serve_split[0])
        for name, (path, params, _) in ESTIMATORS.items()
    }


@pytest.mark.parametrize("name", ESTIMATORS)
def test_fast_path_equals_pipeline_on_the_whole_holdout(
    name: str, pipelines: dict[str, Pipeline], serve_split: tuple[pd.DataFrame, pd.DataFrame], settings: Settings
) -> None:
    pipeline, holdout, tolerance = pipelines[name], serve_split[1], ESTIMATORS[name][2]
    compiled = fast.compile_pipeline(pipeline, settings.data.features)
    assert compiled.tolerance == tolerance
    x, _ = frames.features_and_target(holdout, settings)
    expected = pipeline.predict_proba(x)[:, 1]  # exactly as evaluation calls it
    records = serving.records(holdout, settings)
    one_by_one = np.concatenate([compiled.proba([r]) for r in records])
    step = settings.serve.max_batch_records
    batches = np.concatenate([compiled.proba(records[i : i + step]) for i in range(0, len(records), step)])
    decision = Decision(threshold=settings.model.decision_threshold)
    for got in (one_by_one, batches):
        assert len(got) == len(holdout) > 1000
        max_diff = float(np.max(np.abs(got - expected)))
        flips = int(np.sum(decision.labels(x, got) != decision.labels(x, expected)))
        assert max_diff <= tolerance and flips == 0, f"max |p diff| {max_diff:.3g}, {flips} label flips"


@pytest.mark.parametrize("name", ESTIMATORS)
def test_unknown_and_missing_categories_match_the_pipeline(
    name: str, pipelines: dict[str, Pipeline], settings: Settings
) -> None:
    pipeline = pipelines[name]
    compiled = fast.compile_pipeline(pipeline, settings.data.features)
    records = loading.probe_records(settings, rows=64, seed=3)
    for i, feature in enumerate(settings.data.categorical):
        records[i][feature] = "not-a-known-category"
        records[i + 16][feature] = None
    expected = PipelinePredictor(pipeline, settings.data.features).proba(records)
    for got in (compiled.proba(records), np.concatenate([compiled.proba([r]) for r in records])):
        assert float(np.max(np.abs(got - expected))) <= compiled.tolerance


@pytest.mark.parametrize("name", ESTIMATORS)
def test_the_loader_serves_the_fast_path(name: str, pipelines: dict[str, Pipeline], settings: Settings) -> None:
    pipeline = pipelines[name]
    chosen = loading.choose_predictor(pipeline, PipelinePredictor(pipeline, settings.data.features), settings)
    assert chosen.name == "fast"


def test_a_forest_on_several_jobs_promises_only_the_tolerance(
    pipelines: dict[str, Pipeline], settings: Settings
) -> None:
    """scikit-learn adds the trees of a forest in the order its threads finish when n_jobs > 1."""
    pipeline = pipelines["random_forest"]
    pipeline[-1].set_params(n_jobs=2)
    try:
        assert fast.compile_pipeline(pipeline, settings.data.features).tolerance == 1e-12
    finally:
        pipeline[-1].set_params(n_jobs=None)


class TweakedLogisticRegression(linear.LogisticRegression):
    """A subclass may predict differently from its base; the compiler must not assume it does not."""

    def predict_proba(self, X: Any) -> np.ndarray:
        return super().predict_proba(X) ** 2


@pytest.mark.parametrize(
    ("estimator", "params", "named"),
    [
        ("sklearn.neighbors.KNeighborsClassifier", {}, "KNeighborsClassifier"),
        (f"{__name__}.TweakedLogisticRegression", {"max_iter": 300}, "TweakedLogisticRegression"),
        ("sklearn.linear_model.SGDClassifier", {"loss": "modified_huber", "random_state": 0}, "modified_huber"),
    ],
)
def test_other_estimators_are_served_by_the_pipeline(
    estimator: str,
    params: dict[str, Any],
    named: str,
    settings: Settings,
    serve_split: tuple[pd.DataFrame, pd.DataFrame],
    caplog: pytest.LogCaptureFixture,
) -> None:
    other = with_estimator(settings, estimator, params)
    pipeline = model.build_pipeline(other).fit(*frames.features_and_target(serve_split[0].head(1000), other))
    with pytest.raises(fast.Unsupported, match=named):
        fast.compile_pipeline(pipeline, other.data.features)
    reference = PipelinePredictor(pipeline, other.data.features)
    with caplog.at_level(logging.WARNING, logger="conveyor.serve"):
        chosen = loading.choose_predictor(pipeline, reference, other)
    assert chosen is reference
    assert "does not apply" in caplog.text


def test_a_compiled_model_off_by_a_billionth_is_not_served(
    pipelines: dict[str, Pipeline],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1e-9 is far inside any label's margin, and far outside the 1e-12 the linear model promises."""
    pipeline = pipelines["logistic_regression"]
    original = linear.Linear.proba
    monkeypatch.setattr(linear.Linear, "proba", lambda self, rows: original(self, rows) + 1e-9)
    reference = PipelinePredictor(pipeline, settings.data.features)
    with caplog.at_level(logging.WARNING, logger="conveyor.serve"):
        chosen = loading.choose_predictor(pipeline, reference, settings)
    assert chosen is reference
    assert "differs by up to 1e-09 on probe records (tolerance 1e-12)" in caplog.text
