"""`conveyor train` refuses, in one sentence and before the real fit, what would fail late or save a model
that cannot be loaded: types skops was not told to trust, too many categories, text in a numeric column."""

from pathlib import Path

import pandas as pd
import pytest

from conveyor.config import CategoryFeature, Settings
from conveyor.data import frames
from conveyor.errors import ConveyorError
from conveyor.paths import TRAINED_MODEL
from conveyor.training import fit, model
from tests.factories import csv_with_bad_cells


def _with_model(settings: Settings, **update) -> Settings:
    return settings.model_copy(update={"model": settings.model.model_copy(update=update)})


FOREST = {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 5, "random_state": 0}}


def test_configured_trusted_types_cover_the_configured_model(settings: Settings) -> None:
    model.check_trusted_types(settings)


def test_a_forest_needs_tree_trusted_before_anything_is_read(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no data here: the trusted types are judged first
    with pytest.raises(ConveyorError) as raised:
        fit.run(_with_model(settings, **FOREST))
    message = str(raised.value)
    assert message.startswith("model.trusted_types lacks ")
    assert "sklearn.tree._tree.Tree" in message
    assert message.endswith("or skops will refuse to load the model.")
    assert not TRAINED_MODEL.exists()


def test_a_forest_with_its_types_trusted_passes(settings: Settings) -> None:
    trusted = [*settings.model.trusted_types, "numpy.dtype", "sklearn.tree._tree.Tree"]
    model.check_trusted_types(_with_model(settings, **FOREST, trusted_types=trusted))


def _with_categories(settings: Settings, name: str, count: int) -> Settings:
    features = dict(settings.data.features) | {
        name: CategoryFeature(type="category", values=[f"v{i}" for i in range(count)])
    }
    return settings.model_copy(update={"data": settings.data.model_copy(update={"features": features})})


def test_too_many_categories_for_native_support_names_the_feature(settings: Settings) -> None:
    name = settings.data.categorical[0]
    model.build_pipeline(_with_categories(settings, name, 255))
    with pytest.raises(ConveyorError) as raised:
        model.build_pipeline(_with_categories(settings, name, 256))
    assert str(raised.value) == (
        f"data.features.{name} has 256 categories, but HistGradientBoostingClassifier supports at most 255 per "
        "feature (max_bins); merge the rare ones or declare it a numeric feature."
    )
    with pytest.raises(ConveyorError, match="at most 99 per feature"):
        model.build_pipeline(_with_model(_with_categories(settings, name, 100), params={"max_bins": 99}))


def test_one_hot_estimators_have_no_category_limit(settings: Settings) -> None:
    linear = _with_model(settings, estimator="sklearn.linear_model.LogisticRegression", params={})
    model.build_pipeline(_with_categories(linear, settings.data.categorical[0], 300))


def test_text_in_a_numeric_column_stops_training_before_the_fit(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    name = settings.data.numeric[-1]
    csv_with_bad_cells(settings, 200, name, [3, 7], "n/a")
    monkeypatch.setattr(model, "build_pipeline", _never)
    monkeypatch.setattr(model, "check_trusted_types", lambda s: None)
    with pytest.raises(ConveyorError, match=rf"^data.features.{name}: 2 of 200 values are not numbers \(e.g. 'n/a'\)"):
        fit.run(settings)
    assert frames.not_numbers(pd.read_csv(settings.data.path), settings) is None  # pandas alone would hide them


def _never(settings: Settings) -> None:
    raise AssertionError("the model was built")
