"""`conveyor export`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.config import load_settings

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _export(args: argparse.Namespace) -> int:
    from conveyor.registry import export

    settings = load_settings(args.params)
    version = args.version or export.version_from_gate(args.gate_report)
    folder = export.from_registry(settings, version)
    print(f"export: version {version} of {settings.model.name} into {folder}/")
    return 0


def add_commands(commands: Commands) -> None:
    export = commands.add("export", "write models/ from a registered model version in MLflow", _export)
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", help="the registered model version to export")
    which.add_argument("--gate-report", type=Path, help="a passed reports/gate.json: export its model_version")
