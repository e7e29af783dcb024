"""`conveyor export`: models/ from the MLflow registry, for when the pipeline ran elsewhere (Argo Workflows) and
artifacts/model is not on this machine. The bundle is the one the gate exports: the registered version's model
folder, with metadata from its run (tags git_commit and data_version, metrics evaluate.*). Only the files the gate
tagged the version with (`file/<name>` digests) are exported, byte for byte."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from conveyor import bundle
from conveyor.bundle import MODEL_FILE
from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.registry import tracking

PROVENANCE_TAGS = ("git_commit", "data_version")
EVALUATE_PREFIX = "evaluate."


def version_from_gate(report: Path) -> str:
    """The model_version of a passed gate report."""
    if not report.exists():
        raise ConveyorError(f"--gate-report {report}: no such file; expected the gate's reports/gate.json.")
    verdict = json.loads(report.read_text())
    if verdict.get("passed") is not True or not verdict.get("model_version"):
        raise ConveyorError(
            f"{report}: passed = {verdict.get('passed')!r}, model_version = {verdict.get('model_version')!r}; "
            "expected a passed gate with a registered version."
        )
    return str(verdict["model_version"])


def from_registry(settings: Settings, version: str) -> Path:
    """Write models/ for the registered `version` of settings.model.name."""
    found = tracking.by_version(settings, version)
    if found is None:
        raise ConveyorError(
            f"--version {version!r}: model {settings.model.name!r} has no such version; "
            "expected a version registered in MLflow (MLFLOW_TRACKING_URI)."
        )
    run = MlflowClient().get_run(found.run_id)
    missing = [tag for tag in PROVENANCE_TAGS if tag not in run.data.tags]
    if missing:
        raise ConveyorError(
            f"run {found.run_id}: tags {missing} are missing; expected a run logged by `conveyor train`."
        )
    metrics = {
        key.removeprefix(EVALUATE_PREFIX): value
        for key, value in run.data.metrics.items()
        if key.startswith(EVALUATE_PREFIX)
    }
    if not metrics:
        raise ConveyorError(
            f"run {found.run_id}: no {EVALUATE_PREFIX}* metrics; expected a run that went through the gate."
        )
    info: dict[str, Any] = {"run_id": found.run_id, **{tag: run.data.tags[tag] for tag in PROVENANCE_TAGS}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = tracking.download_version(settings, found.version, Path(tmp))
        if folder is None or not (folder / MODEL_FILE).exists():
            raise ConveyorError(
                f"--version {version!r}: the registered model folder has no {MODEL_FILE}; "
                "expected a model saved by `conveyor train`."
            )
        _check_files(found, folder)
        return bundle.export(settings, str(found.version), info, metrics, source=folder)


def _check_files(version: ModelVersion, folder: Path) -> None:
    """The downloaded files are exactly those the gate tagged the version with, byte for byte."""
    tagged = tracking.tagged_files(version)
    where = f"model version {version.version}"
    if not tagged:
        raise ConveyorError(
            f"{where}: no {tracking.FILE_TAG}* digest tags: it was gated before file digests were recorded; "
            "re-run `conveyor gate` on its run to record them."
        )
    found = bundle.digests(folder)
    for name in sorted(set(tagged) | set(found)):
        got, expected = found.get(name, "missing"), tagged.get(name, "no such file")
        if got != expected:
            raise ConveyorError(
                f"{where}: {name} is {got} in the registry, expected {expected} (tag {tracking.FILE_TAG}{name}); "
                "the registered files are not the ones the gate exported."
            )
