"""`conveyor gate`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from conveyor.config import load_settings

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _gate(args: argparse.Namespace) -> int:
    from conveyor.gate import verdict

    return 0 if verdict.run(load_settings(args.params)) else 1


def add_commands(commands: Commands) -> None:
    commands.add("gate", "read every check; on pass, register the model as candidate and export models/", _gate)
