"""The model builder: a scikit-learn Pipeline (preprocessing, then the estimator) built from params.yaml."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pandas as pd
import skops.io
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from conveyor.config import Settings
from conveyor.errors import ConveyorError


def estimator(settings: Settings) -> BaseEstimator:
    """Instantiate `model.estimator` with `model.params`."""
    module_name, _, class_name = settings.model.estimator.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise ConveyorError(
            f"model.estimator = {settings.model.estimator!r} cannot be imported; "
            "expected a class path such as sklearn.ensemble.HistGradientBoostingClassifier."
        ) from None
    accepted = inspect.signature(cls).parameters
    for key in settings.model.params:
        if key not in accepted:
            raise ConveyorError(f"model.params.{key} is not a parameter of {class_name}.")
    return cls(**settings.model.params)


def build_pipeline(settings: Settings) -> Pipeline:
    """Preprocessing suited to the estimator, then the estimator.

    Estimators with native categorical support (HistGradientBoosting) get ordinal codes over the categories
    declared in params.yaml, with unknown and missing values as NaN; others get one-hot and scaled numbers."""
    data = settings.data
    model = estimator(settings)
    categories = [data.features[name].values for name in data.categorical]
    if "categorical_features" in model.get_params():
        _within_category_limit(settings, model)
        encoder = OrdinalEncoder(
            categories=categories,
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            dtype=np.float64,
        )
        prep = ColumnTransformer(
            [("categories", encoder, data.categorical), ("numbers", "passthrough", data.numeric)],
            verbose_feature_names_out=False,
        )
        model.set_params(categorical_features=list(range(len(data.categorical))))
    else:
        prep = ColumnTransformer(
            [
                (
                    "categories",
                    make_pipeline(
                        SimpleImputer(strategy="constant", fill_value="missing"),
                        OneHotEncoder(categories=[[*c, "missing"] for c in categories], handle_unknown="ignore"),
                    ),
                    data.categorical,
                ),
                ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), data.numeric),
            ]
        )
    return Pipeline([("prep", prep), ("model", model)])


def _within_category_limit(settings: Settings, model: BaseEstimator) -> None:
    """Native categorical support bins each category: at most max_bins (255 at most) of them per feature."""
    limit = int(model.get_params().get("max_bins", 255))
    for name in settings.data.categorical:
        count = len(settings.data.features[name].values)  # any other value is encoded as unknown
        if count > limit:
            raise ConveyorError(
                f"data.features.{name} has {count} categories, but {type(model).__name__} supports at most "
                f"{limit} per feature (max_bins); merge the rare ones or declare it a numeric feature."
            )


def sample(settings: Settings, rows: int = 40) -> tuple[pd.DataFrame, np.ndarray]:
    """A few rows that satisfy params.yaml (each category, numbers across their range) and both classes."""
    data = settings.data
    columns: dict[str, object] = {}
    for name, feature in data.features.items():
        if feature.type == "category":
            columns[name] = [feature.values[i % len(feature.values)] for i in range(rows)]
        else:
            columns[name] = np.linspace(feature.min, feature.max, rows)
    return pd.DataFrame(columns), np.arange(rows) % 2


def check_trusted_types(settings: Settings) -> None:
    """Fail before the real fit when the configured model, saved with skops, holds a type that params.yaml
    model.trusted_types does not list: the saved model could not be loaded. A tiny model of the same
    Pipeline is fitted on `sample` rows and saved in memory to find out."""
    pipeline = build_pipeline(settings).fit(*sample(settings))
    needed = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    missing = sorted(set(needed) - set(settings.model.trusted_types))
    if missing:
        raise ConveyorError(
            f"model.trusted_types lacks {', '.join(missing)}, which a saved {settings.model.estimator} holds; "
            "add it to params.yaml after review, or skops will refuse to load the model."
        )
