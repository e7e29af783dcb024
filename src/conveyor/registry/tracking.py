"""MLflow: tracking and the model registry with aliases (candidate, staging, champion), never stages.

Embedded default: sqlite:///mlruns.db with artifacts in ./mlartifacts. MLFLOW_TRACKING_URI switches to a server."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.models_artifact_repo import REGISTERED_MODEL_META_FILE_NAME
from mlflow.tracking import MlflowClient

from conveyor.config import Settings

DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
ARTIFACT_ROOT = Path("mlartifacts")
EXPERIMENT = "conveyor"
MODEL_ARTIFACT = "model"
CANDIDATE, STAGING, CHAMPION = "candidate", "staging", "champion"
# A model version's tag `file/<name>` = `sha256:<hex>`: the digest of each bundle file, as metadata.json lists them.
FILE_TAG = "file/"


def configure() -> str:
    """Point MLflow at $MLFLOW_TRACKING_URI or the embedded sqlite file; select the experiment."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = ARTIFACT_ROOT.resolve().as_uri() if uri.startswith("sqlite:") else None
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    return uri


def of_run(settings: Settings, run_id: str) -> ModelVersion | None:
    """The oldest version of the model registered from `run_id`, or None."""
    configure()
    found = MlflowClient().search_model_versions(f"name = '{settings.model.name}' and run_id = '{run_id}'")
    return min(found, key=lambda v: int(v.version), default=None)


def register(settings: Settings, run_id: str, alias: str = CANDIDATE) -> ModelVersion:
    """Register the run's model, once: a run already registered keeps its version (re-running the gate on an
    unchanged run adds no duplicate). Point `alias` at the version."""
    version = of_run(settings, run_id)
    if version is None:
        version = mlflow.register_model(f"runs:/{run_id}/{MODEL_ARTIFACT}", settings.model.name)
    MlflowClient().set_registered_model_alias(settings.model.name, alias, version.version)
    return version


def tag_files(settings: Settings, version: str | int, files: dict[str, str]) -> None:
    """Record the digest of each bundle file on the model version, the same digests metadata.json lists; a file
    tag of an earlier export that `files` no longer lists is removed."""
    client = MlflowClient()
    name, number = settings.model.name, str(version)
    for stale in set(tagged_files(client.get_model_version(name, number))) - set(files):
        client.delete_model_version_tag(name, number, FILE_TAG + stale)
    for file, digest in files.items():
        client.set_model_version_tag(name, number, FILE_TAG + file, digest)


def tagged_files(version: ModelVersion) -> dict[str, str]:
    """The bundle file digests recorded on a model version (`tag_files`), by file name."""
    return {key.removeprefix(FILE_TAG): value for key, value in version.tags.items() if key.startswith(FILE_TAG)}


def set_alias(settings: Settings, alias: str, version: str | int) -> None:
    configure()
    MlflowClient().set_registered_model_alias(settings.model.name, alias, str(version))


def by_alias(settings: Settings, alias: str) -> ModelVersion | None:
    """The version an alias points at, or None when the model or the alias does not exist."""
    configure()
    try:
        return MlflowClient().get_model_version_by_alias(settings.model.name, alias)
    except MlflowException:
        return None


def by_version(settings: Settings, version: str | int) -> ModelVersion | None:
    """A registered version of the model, or None when the model or the version does not exist."""
    configure()
    try:
        return MlflowClient().get_model_version(settings.model.name, str(version))
    except MlflowException:
        return None


def download_version(settings: Settings, version: str | int, destination: Path) -> Path | None:
    """Fetch the model folder of a registered version, as it was logged; None when there is no such version.
    MLflow adds a file of its own to a models:/ download (the registry's name and version): it is removed, it was
    never part of the model."""
    if by_version(settings, version) is None:
        return None
    destination.mkdir(parents=True, exist_ok=True)
    uri = f"models:/{settings.model.name}/{version}"
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination)))
    (folder / REGISTERED_MODEL_META_FILE_NAME).unlink(missing_ok=True)
    return folder


def download(settings: Settings, alias: str, destination: Path) -> Path | None:
    """Fetch the model folder an alias points at; None when there is no such alias."""
    version = by_alias(settings, alias)
    if version is None:
        return None
    destination.mkdir(parents=True, exist_ok=True)
    uri = f"models:/{settings.model.name}@{alias}"
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination)))


def versions(settings: Settings) -> list[ModelVersion]:
    configure()
    return list(MlflowClient().search_model_versions(f"name = '{settings.model.name}'"))
