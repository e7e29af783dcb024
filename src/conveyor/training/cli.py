"""`conveyor train`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from conveyor.config import load_settings
from conveyor.paths import GATE_INDEX

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _train(args: argparse.Namespace) -> int:
    from conveyor.training import fit

    # fit.run removes the gate's gate.json and gate.md; its page goes too, so a training that stops leaves none
    GATE_INDEX.unlink(missing_ok=True)
    info = fit.run(load_settings(args.params))
    print(f"train: MLflow run {info['run_id']}")
    return 0


def add_commands(commands: Commands) -> None:
    commands.add("train", "fit the model and log it to MLflow", _train, step=True)
