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
        args.step.untimed()
        summary, table = verdict.explain(form="text")
        print(table, end="")
        return 0 if summary.get("passed") else 1
    args.step.total = len(verdict.PHASES)
    passed = verdict.run(load_settings(args.params), args.step.advance)
    args.step.finish("passed" if passed else "FAILED")
    return 0 if passed else 1


def add_commands(commands: Commands) -> None:
    gate = commands.add(
        "gate",
        "read every check; on pass, register the model as candidate and export models/; write reports/gate.md, "
        "gate.json and index.html",
        _gate,
        step=True,
    )
    gate.add_argument(
        "--explain",
        action="store_true",
        help="judge nothing: print this run's verdict, or the stage that stopped it and why (exit 1 unless passed)",
    )
