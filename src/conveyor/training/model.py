"""The model builder: a scikit-learn Pipeline (preprocessing, then the estimator) built from params.yaml."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
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
