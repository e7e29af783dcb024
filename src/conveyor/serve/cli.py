"""`conveyor serve`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.config import load_settings
from conveyor.errors import ConveyorError
from conveyor.paths import MODELS

if TYPE_CHECKING:
    from conveyor.cli import Commands

WAIT_FOR_MODEL = "--wait-for-model"  # what the image's CMD passes (conveyor.manifests.contract checks it)


def _serve(args: argparse.Namespace) -> int:
    from conveyor.serve import app

    if not args.wait_for_model:
        _require_bundle(Path(os.environ.get(app.MODEL_DIR_ENV) or MODELS))
    app.serve(load_settings(args.params), host=args.host, port=args.port, shadow_dir=args.shadow_model_dir)
    return 0


def _require_bundle(folder: Path) -> None:
    """On a laptop a server that answers 503 forever explains nothing: say which bundle is missing and how to
    make one. Kubernetes starts serve with --wait-for-model, where not ready is the right answer."""
    from conveyor.bundle import MODEL_FILE

    if not (folder / MODEL_FILE).is_file():
        raise ConveyorError(
            f"no model bundle at {folder / MODEL_FILE}: make one with `make run` (the gate exports a passed model "
            "to models/) or `conveyor export --version N` (a registered version), or set MODEL_DIR to a bundle; "
            "`--wait-for-model` starts anyway and answers 503 on /readyz until one loads."
        )


def add_commands(commands: Commands) -> None:
    serve = commands.add("serve", "run the model API on the bundle in models/ (or $MODEL_DIR)", _serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: params.yaml serve.port")
    serve.add_argument(
        "--shadow-model-dir",
        type=Path,
        default=None,
        help="a second bundle scored off the request path on the logged records (default: $SHADOW_MODEL_DIR)",
    )
    serve.add_argument(
        WAIT_FOR_MODEL,
        action="store_true",
        help="start without a bundle: /readyz answers 503 until one is loaded (Kubernetes); without it, a missing "
        "bundle exits 2 saying how to make one",
    )
