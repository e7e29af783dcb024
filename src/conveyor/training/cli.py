"""`conveyor train`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from conveyor.config import load_settings

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _train(args: argparse.Namespace) -> int:
    from conveyor.training import fit

    info = fit.run(load_settings(args.params))
    print(f"train: MLflow run {info['run_id']}")
    return 0


def add_commands(commands: Commands) -> None:
    commands.add("train", "fit the model and log it to MLflow", _train, step=True)
