"""train: fit the Pipeline on the training split, save it with skops, and record an MLflow run."""

from __future__ import annotations

import json
import shutil
import time
from importlib.metadata import version
from typing import Any

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from conveyor import provenance
from conveyor.config import Settings
from conveyor.data import frames
from conveyor.decision import Decision
from conveyor.errors import ConveyorError
from conveyor.paths import GATE_SUMMARY, GATE_TABLE, TRAIN_INFO, TRAINED_MODEL
from conveyor.registry import tracking
from conveyor.training import mitigation, model

# What loading the saved model needs; listed so MLflow does not spend seconds inferring it.
RUNTIME_PACKAGES = ("scikit-learn", "skops", "numpy", "pandas")


def fit(settings: Settings, train: pd.DataFrame) -> tuple[Any, Decision]:
    """The fitted pipeline and its decision policy."""
    x, y = mitigation.canonical(*frames.features_and_target(train, settings))  # the file's row order cannot matter
    if len(set(y)) < 2:
        raise ConveyorError(
            f"{settings.data.target}: the training data has a single class; "
            f"expected rows with and without {settings.data.positive_label!r}."
        )
    pipeline = model.build_pipeline(settings).fit(x, y)
    return pipeline, mitigation.decision(settings, x, y)


def _save(settings: Settings, pipeline: Any, decision: Decision, example: pd.DataFrame) -> None:
    shutil.rmtree(TRAINED_MODEL, ignore_errors=True)
    try:
        mlflow.sklearn.save_model(
            pipeline,
            str(TRAINED_MODEL),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=list(settings.model.trusted_types),
            signature=infer_signature(example, pipeline.predict_proba(example)),
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            pip_requirements=[f"{name}=={version(name)}" for name in RUNTIME_PACKAGES],
        )
    except MlflowException as exc:
        shutil.rmtree(TRAINED_MODEL, ignore_errors=True)
        raise ConveyorError(f"model.trusted_types does not cover the model: {exc.message}") from None
    decision.save(TRAINED_MODEL)


def run(settings: Settings) -> dict[str, Any]:
    """Fit, save to artifacts/model, log the run; write artifacts/train.json for the later steps.

    The previous record goes first, and the gate's verdict on it, so a failed run can never leave a gate looking at
    an older model, nor an earlier verdict standing for this run."""
    for previous in (TRAIN_INFO, GATE_SUMMARY, GATE_TABLE):
        previous.unlink(missing_ok=True)
    model.check_trusted_types(settings)
    frame = frames.load_training(settings)
    problem = frames.not_numbers(frame, settings)
    if problem:
        raise ConveyorError(problem)
    train, holdout = frames.split(frame, settings)
    started = time.perf_counter()
    pipeline, decision = fit(settings, train)
    fit_seconds = time.perf_counter() - started
    example = train[list(settings.data.features)].head(5)
    _save(settings, pipeline, decision, example)

    info = {
        "git_commit": provenance.git_commit(),
        "data_version": provenance.data_version(),
        "estimator": settings.model.estimator,
        "train_rows": len(train),
        "holdout_rows": len(holdout),
        "fit_seconds": round(fit_seconds, 3),
    }
    tracking.configure()
    with mlflow.start_run() as active:
        mlflow.set_tags({"git_commit": info["git_commit"], "data_version": info["data_version"]})
        mlflow.log_params(
            {"estimator": settings.model.estimator, "test_size": settings.split.test_size}
            | {f"model.{k}": v for k, v in settings.model.params.items()}
        )
        mlflow.log_metrics({k: info[k] for k in ("train_rows", "holdout_rows", "fit_seconds")})
        mlflow.log_artifacts(str(TRAINED_MODEL), tracking.MODEL_ARTIFACT)
        info["run_id"] = active.info.run_id
        info["tracking_uri"] = mlflow.get_tracking_uri()
    TRAIN_INFO.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info
