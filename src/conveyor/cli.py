"""`conveyor <step>`: one subcommand per pipeline step. dvc.yaml, the workflows and Argo call these.

Each part of the project adds its own subcommands through `add_commands(commands)` in its `cli` module. Those
modules are imported at every start, so they import their work lazily: the serving image has no pipeline library."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from conveyor.errors import ConveyorError

# The parts that add subcommands, in the order `conveyor --help` lists them (the pipeline's order).
PARTS = (
    "conveyor.data.cli",
    "conveyor.checks.cli",
    "conveyor.training.cli",
    "conveyor.gate.cli",
    "conveyor.registry.cli",
    "conveyor.serve.cli",
    "conveyor.monitor.cli",
    "conveyor.deploy.cli",
    "conveyor.manifests.cli",
    "conveyor.argo.cli",
    "conveyor.ci.cli",
)
Run = Callable[[argparse.Namespace], int]


class Commands:
    """Adds subcommands the same way for every part: a one-line help that is also the `--help` description,
    and the global options (`--params`) accepted after the subcommand as well as before it."""

    def __init__(self, parser: argparse.ArgumentParser, common: argparse.ArgumentParser, dest: str) -> None:
        self._actions = parser.add_subparsers(dest=dest, required=True, metavar=f"<{dest}>")
        self._common = common

    def add(self, name: str, help: str, run: Run | None = None) -> argparse.ArgumentParser:
        """A subcommand; `run(args)` returns the exit code."""
        parser = self._actions.add_parser(
            name, help=help, description=help[0].upper() + help[1:] + ".", parents=[self._common]
        )
        if run is not None:
            parser.set_defaults(func=run)
        return parser

    def group(self, name: str, help: str) -> Commands:
        """A subcommand with actions of its own (`conveyor deploy bump`)."""
        return Commands(self.add(name, help), self._common, dest="action")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conveyor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=None, help="configuration file (default: params.yaml)")
    # After a subcommand, --params only overrides what was given before it (SUPPRESS: absent leaves it be).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default=argparse.SUPPRESS, help="configuration file (default: params.yaml)")
    commands = Commands(parser, common, dest="step")
    for part in PARTS:
        importlib.import_module(part).add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConveyorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
