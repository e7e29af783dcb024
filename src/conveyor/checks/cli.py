"""`conveyor quality|drift|evaluate|fairness|latency|behaviour`: one command per gated check."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

from conveyor.checks import BLOCKING, CHECKS

if TYPE_CHECKING:
    from conveyor.cli import Commands, Run


def _runner(check: str) -> Run:
    def run(args: argparse.Namespace) -> int:
        from conveyor.config import load_settings

        result = importlib.import_module(f"conveyor.checks.{check}").run(load_settings(args.params))
        print(f"{result.check}: {'passed' if result.passed else 'FAILED'}")
        for failure in result.failures:
            print(f"  - {failure}", file=sys.stderr)
        for warning in result.warnings:
            print(f"  ! {warning}", file=sys.stderr)
        return 1 if (not result.passed and check in BLOCKING) else 0

    return run


def add_commands(commands: Commands) -> None:
    for check, help_text in CHECKS.items():
        commands.add(check, help_text, _runner(check))
