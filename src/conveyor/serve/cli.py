"""`conveyor serve`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.config import load_settings

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _serve(args: argparse.Namespace) -> int:
    from conveyor.serve import app

    app.serve(load_settings(args.params), host=args.host, port=args.port, shadow_dir=args.shadow_model_dir)
    return 0


def add_commands(commands: Commands) -> None:
    serve = commands.add("serve", "run the model API on the bundle in models/", _serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: params.yaml serve.port")
    serve.add_argument(
        "--shadow-model-dir",
        type=Path,
        default=None,
        help="a second bundle scored off the request path on the logged records (default: $SHADOW_MODEL_DIR)",
    )
