"""The model bundle the image bakes in: models/ = the MLflow model folder (model.skops, decision.json, MLmodel)
plus metadata.json (version, provenance, metrics and the feature schema the API is built from)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from conveyor.config import Settings
from conveyor.paths import EXPORTED_METADATA, MODELS, TRAINED_MODEL

METADATA_FILE = EXPORTED_METADATA.name


def export(
    settings: Settings,
    version: str,
    train_info: dict[str, Any],
    metrics: dict[str, Any],
    source: Path = TRAINED_MODEL,
) -> Path:
    """Write models/ for the image build from the model folder `source`. Written to a sibling folder first,
    then swapped in, so a failure never leaves a half-written bundle behind."""
    staging = MODELS.with_name(MODELS.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    metadata = {
        "name": settings.model.name,
        "version": str(version),
        "run_id": train_info["run_id"],
        "git_commit": train_info["git_commit"],
        "data_version": train_info["data_version"],
        "estimator": settings.model.estimator,
        "metrics": metrics,
        "target": settings.data.target,
        "positive_label": settings.data.positive_label,
        "features": {name: f.model_dump() for name, f in settings.data.features.items()},
    }
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    clear()
    staging.rename(MODELS)
    return MODELS


def clear() -> None:
    """Remove any earlier export, so a failed gate leaves nothing to build an image from."""
    shutil.rmtree(MODELS, ignore_errors=True)


def read_metadata(folder: Path = MODELS) -> dict[str, Any]:
    return json.loads((folder / METADATA_FILE).read_text())
