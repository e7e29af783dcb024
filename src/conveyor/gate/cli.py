"""`conveyor gate`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from conveyor.config import load_settings

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _gate(args: argparse.Namespace) -> int:
    from conveyor.gate import verdict

    if args.explain:
        summary, table = verdict.explain()
        print(table, end="")
        return 0 if summary.get("passed") else 1
    return 0 if verdict.run(load_settings(args.params)) else 1


def add_commands(commands: Commands) -> None:
    gate = commands.add("gate", "read every check; on pass, register the model as candidate and export models/", _gate)
    gate.add_argument(
        "--explain",
        action="store_true",
        help="judge nothing: print this run's verdict, or the stage that stopped it and why (exit 1 unless passed)",
    )
