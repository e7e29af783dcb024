"""`conveyor <step>`: one subcommand per pipeline step. dvc.yaml, the workflows and Argo call these.

Each part of the project adds its own subcommands through `add_commands(commands)` in its `cli` module. Those
modules are imported at every start, so they import their work lazily: the serving image has no pipeline library."""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from conveyor.config import human
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


def elapsed(seconds: float) -> str:
    """`4.2 s`, `2 min 5 s`."""
    if seconds < 60:
        return f"{human(seconds, 1)} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


class Step:
    """One pipeline step's elapsed time and progress. At the end it prints `quality: passed in 4.2 s`; while it
    runs, a terminal gets a bar (or, with no phases known, the time so far) redrawn on one line, and a log (CI,
    any non-terminal) a plain line at each phase, `train: 3/5 fitting mitigation`, and one every `quiet` seconds
    of silence. `advance` names the next phase."""

    def __init__(self, name: str, total: int | None = None, stream: TextIO | None = None, quiet: float = 30.0):
        self.name, self.total, self.done = name, total, 0
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.phase = "running"
        self.finished: str | None = None
        self._start = self._said = time.monotonic()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._tty = self.stream.isatty()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self) -> Step:
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._ticker.join()
        if self.finished is None:
            self.finish("stopped" if exc[0] is not None else "done")

    def seconds(self) -> float:
        return time.monotonic() - self._start

    def advance(self, phase: str) -> None:
        with self._lock:
            self.done, self.phase = self.done + 1, phase
            self._said = time.monotonic()
            if self._tty:
                self._draw()
            else:
                count = f"{self.done}/{self.total} " if self.total else ""
                print(f"{self.name}: {count}{phase}", file=self.stream, flush=True)

    def finish(self, outcome: str) -> None:
        """Print `<name>: <outcome> in <elapsed>` on stdout, once."""
        with self._lock:
            self.finished = outcome
            if self._tty:
                print("\r\033[K", end="", file=self.stream, flush=True)
            print(f"{self.name}: {outcome} in {elapsed(self.seconds())}", flush=True)

    def untimed(self) -> None:
        """This invocation is no pipeline step (`conveyor gate --explain`): no progress, no elapsed time."""
        with self._lock:
            self.finished = ""

    def _draw(self) -> None:
        if self.total:
            filled = round(20 * min(self.done, self.total) / self.total)
            shown = f"[{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total} {self.phase}"
        else:
            shown = self.phase
        print(f"\r\033[K{self.name} {shown}  {elapsed(self.seconds())}", end="", file=self.stream, flush=True)

    def _tick(self) -> None:
        """A terminal's line redrawn every half second after the first; a log's line after `quiet` s of silence."""
        while not self._stop.wait(0.5):
            with self._lock:
                if self.finished is not None:
                    return
                if self._tty and self.seconds() >= 1:
                    self._draw()
                elif not self._tty and time.monotonic() - self._said >= self.quiet:
                    self._said = time.monotonic()
                    print(f"{self.name}: {self.phase}, {elapsed(self.seconds())} so far", file=self.stream, flush=True)


class Commands:
    """Adds subcommands the same way for every part: a one-line help that is also the `--help` description,
    and the global options (`--params`) accepted after the subcommand as well as before it."""

    def __init__(self, parser: argparse.ArgumentParser, common: argparse.ArgumentParser, dest: str) -> None:
        self._actions = parser.add_subparsers(dest=dest, required=True, metavar=f"<{dest}>")
        self._common = common

    def add(self, name: str, help: str, run: Run | None = None, step: bool = False) -> argparse.ArgumentParser:
        """A subcommand; `run(args)` returns the exit code. A pipeline `step` runs inside a Step (`args.step`), which
        prints its elapsed time at the end and its progress while it runs; `run` may name its outcome with
        `args.step.finish(...)` (else `done`, or `exited N`)."""
        parser = self._actions.add_parser(
            name, help=help, description=help[0].upper() + help[1:] + ".", parents=[self._common]
        )
        if run is not None:
            parser.set_defaults(func=_timed(name, run) if step else run)
        return parser

    def group(self, name: str, help: str) -> Commands:
        """A subcommand with actions of its own (`conveyor deploy bump`)."""
        return Commands(self.add(name, help), self._common, dest="action")


def _timed(name: str, run: Run) -> Run:
    """`run` inside a Step. It keeps `run`'s name and module: the stage runs that module's code (the timing and
    progress here, like the argument parsing, change nothing a stage computes; tests/unit/test_architecture.py)."""

    @functools.wraps(run)
    def timed(args: argparse.Namespace) -> int:
        with Step(name) as step:
            args.step = step
            code = run(args)
            if step.finished is None:
                step.finish("done" if code == 0 else f"exited {code}")
            return code

    return timed


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
