"""Pipeline construction from params.yaml and safe loading (skops, trusted types from params only)."""

from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest
import skops.io

from conveyor import bundle
from conveyor.config import Settings
from conveyor.data import frames
from conveyor.errors import ConveyorError
from conveyor.training import model
from tests.factories import synthetic


def _with_model(settings: Settings, **update) -> Settings:
    return settings.model_copy(update={"model": settings.model.model_copy(update=update)})


@pytest.mark.parametrize(
    ("estimator", "params"),
    [
        ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 20}),
        ("sklearn.linear_model.LogisticRegression", {"max_iter": 200}),
    ],
)
def test_pipeline_fits_and_tolerates_unknown_and_missing(settings: Settings, estimator: str, params) -> None:
    configured = _with_model(settings, estimator=estimator, params=params)
    frame = synthetic(settings, 400)
    x, y = frames.features_and_target(frame, settings)
    pipeline = model.build_pipeline(configured).fit(x, y)
    odd = x.head(3).copy()
    odd.loc[0, settings.data.categorical[0]] = "never-seen-before"
    odd.loc[1, settings.data.categorical[1]] = np.nan
    proba = pipeline.predict_proba(odd)[:, 1]
    assert np.all((proba >= 0) & (proba <= 1))


def test_unknown_estimator_and_parameter_are_refused(settings: Settings) -> None:
    with pytest.raises(ConveyorError, match=r"model\.estimator = 'sklearn\.nope\.Forest'"):
        model.estimator(_with_model(settings, estimator="sklearn.nope.Forest"))
    with pytest.raises(ConveyorError, match=r"model\.params\.depth is not a parameter"):
        model.estimator(_with_model(settings, params={"depth": 3}))


def test_load_trusts_only_params_types(settings: Settings, tmp_path: Path) -> None:
    frame = synthetic(settings, 300)
    x, y = frames.features_and_target(frame, settings)
    pipeline = model.build_pipeline(_with_model(settings, params={"max_iter": 5})).fit(x, y)
    mlflow.sklearn.save_model(
        pipeline,
        str(tmp_path / "m"),
        serialization_format="skops",
        skops_trusted_types=settings.model.trusted_types,
    )
    loaded = bundle.load(tmp_path / "m", settings)
    np.testing.assert_array_equal(loaded.predict_proba(x), pipeline.predict_proba(x))
    with pytest.raises(ConveyorError, match="cannot be loaded safely"):
        bundle.load(tmp_path / "m", _with_model(settings, trusted_types=[]))


def test_load_refuses_a_corrupt_or_missing_file(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConveyorError, match="no model file"):
        bundle.load(tmp_path, settings)
    (tmp_path / bundle.MODEL_FILE).write_bytes(b"not a zip")
    with pytest.raises(ConveyorError, match="cannot be loaded safely"):
        bundle.load(tmp_path, settings)


def test_load_never_runs_a_foreign_type(settings: Settings, tmp_path: Path) -> None:
    """A file that names a type outside the allow-list is refused, whatever the file itself claims."""
    (tmp_path / bundle.MODEL_FILE).write_bytes(skops.io.dumps({"payload": Path("x")}))
    with pytest.raises(ConveyorError, match="cannot be loaded safely"):
        bundle.load(tmp_path, settings)
