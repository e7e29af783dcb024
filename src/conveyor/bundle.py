"""The model bundle: the folder `conveyor train` saves (model.skops, decision.json, MLmodel) and, once gated,
models/ = that folder plus metadata.json (version, provenance, metrics and the feature schema the API is built
from, and the SHA-256 of every other file), which the image bakes in. Loading is safe: skops with the trusted types
params.yaml lists, never pickle; `verify` refuses a bundle whose files are not byte for byte the ones exported."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
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
FILES_KEY = "files"


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
        FILES_KEY: digests(staging),
    }
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    clear()
    staging.rename(MODELS)
    return MODELS


def clear() -> None:
    """Remove any earlier export, so a failed gate leaves nothing to build an image from."""
    shutil.rmtree(MODELS, ignore_errors=True)


def digests(folder: Path) -> dict[str, str]:
    """`sha256:<hex>` of every file under `folder` but metadata.json, by its path relative to `folder`."""
    found = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and name != METADATA_FILE:
            with path.open("rb") as stream:
                found[name] = "sha256:" + hashlib.file_digest(stream, "sha256").hexdigest()
    return found


def verify(folder: Path, metadata: dict[str, Any], served: Sequence[str]) -> None:
    """The files in `folder` are exactly those `metadata` lists, byte for byte, and the list covers the `served`
    files: ConveyorError with one sentence naming the first file that is missing, differs or is not listed. A
    bundle exported before digests were recorded is refused: only bytes that went through the gate are served."""
    where = folder / METADATA_FILE
    listed = metadata.get(FILES_KEY)
    if listed is None:
        raise ConveyorError(
            f"{where}: the key {FILES_KEY!r} is missing: the bundle was exported before file digests were recorded; "
            "re-export it (`conveyor gate` or `conveyor export`)."
        )
    if not isinstance(listed, dict) or not all(isinstance(v, str) for v in listed.values()):
        raise ConveyorError(
            f"{where}: {FILES_KEY} = {json.dumps(listed)} is invalid: expected an object of file name to "
            "'sha256:<hex digest>'."
        )
    for name in served:
        if name not in listed:
            raise ConveyorError(
                f"{where}: {FILES_KEY} has no digest of {name!r}: expected the digest of every file served."
            )
    found = digests(folder)
    for name, expected in sorted(listed.items()):
        if name not in found:
            raise ConveyorError(f"{folder / name}: missing; expected the file metadata.json lists with {expected}.")
        if found[name] != expected:
            raise ConveyorError(
                f"{folder / name}: found {found[name]}, expected {expected} (metadata.json); "
                "the file is not the one the gate exported."
            )
    unlisted = sorted(set(found) - set(listed))
    if unlisted:
        raise ConveyorError(
            f"{folder / unlisted[0]}: has no digest in metadata.json ({found[unlisted[0]]}); "
            "expected only the files the gate exported."
        )


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
