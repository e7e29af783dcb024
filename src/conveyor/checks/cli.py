"""`conveyor quality|drift|evaluate|fairness|latency|behaviour`: one command per gated check."""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.checks import BLOCKING, CHECKS, REMEASURED
from conveyor.paths import GATE_INDEX, GATE_SUMMARY, GATE_TABLE, REPORTS

if TYPE_CHECKING:
    from conveyor.cli import Commands, Run


def clear_previous(check: str, reports: Path = REPORTS) -> None:
    """Before a check runs: remove its previous report and the artifacts that report lists (inside reports/ only),
    and the gate's verdict, which judged that previous report. A check that then stops leaves no result claiming
    to be this run's. A re-measured check (latency) leaves the gate's verdict: it runs on every `dvc repro`, and
    the gate runs again whenever its verdict file changes."""
    previous = reports / f"{check}.json"
    if previous.is_file():
        try:
            listed = json.loads(previous.read_text()).get("artifacts") or []
        except (ValueError, AttributeError):
            listed = []
        for name in listed:
            path = Path(name)
            if path.resolve().is_relative_to(reports.resolve()):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        previous.unlink()
    if check not in REMEASURED:
        for verdict in (reports / GATE_SUMMARY.name, reports / GATE_TABLE.name, reports / GATE_INDEX.name):
            verdict.unlink(missing_ok=True)


def _runner(check: str) -> Run:
    def run(args: argparse.Namespace) -> int:
        from conveyor.config import load_settings

        settings = load_settings(args.params)
        clear_previous(check)
        result = importlib.import_module(f"conveyor.checks.{check}").run(settings)
        for failure in result.failures:
            print(f"  - {failure}", file=sys.stderr)
        for warning in result.warnings:
            print(f"  ! {warning}", file=sys.stderr)
        args.step.finish(outcome(check, result.passed))
        return 1 if (not result.passed and check in BLOCKING) else 0

    return run


def outcome(check: str, passed: bool) -> str:
    """What a check's last line says: a failed check either stops the pipeline (blocking) or leaves it to the gate,
    which exits non-zero; the check itself then exits 0."""
    if passed:
        return "passed"
    return "FAILED (blocking: the pipeline stops here)" if check in BLOCKING else "FAILED (the gate decides)"


def add_commands(commands: Commands) -> None:
    for check, help_text in CHECKS.items():
        commands.add(check, help_text, _runner(check), step=True)
