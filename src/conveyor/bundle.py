"""The model bundle: the folder `conveyor train` saves (model.skops, decision.json, MLmodel) and, once gated,
models/ = that folder plus metadata.json (version, provenance, metrics and the feature schema the API is built
from), which the image bakes in. Loading is safe: skops with the trusted types params.yaml lists, never pickle."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import skops.io

from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.paths import EXPORTED_METADATA, MODELS, TRAINED_MODEL

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

MODEL_FILE = "model.skops"
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


def load(folder: Path, settings: Settings) -> Pipeline:
    """Load model.skops trusting only the types params.yaml lists (never the file's own list)."""
    path = folder / MODEL_FILE
    if not path.exists():
        raise ConveyorError(f"{path}: no model file; run `conveyor train` first.")
    try:
        return skops.io.load(path, trusted=list(settings.model.trusted_types))
    except Exception as exc:  # skops raises several types for corrupt or untrusted files
        raise ConveyorError(f"{path}: cannot be loaded safely ({exc.__class__.__name__}: {exc}).") from None
