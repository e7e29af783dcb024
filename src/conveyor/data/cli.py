"""`conveyor data fetch|ingest`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from conveyor.config import load_settings

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _fetch(args: argparse.Namespace) -> int:
    from conveyor.data import fetch

    for path in fetch.fetch(load_settings(args.params)):
        print(f"wrote {path}")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from conveyor.data import ingest

    try:
        print(f"wrote {ingest.run(load_settings(args.params))}")
    except ingest.NoNewData as exhausted:
        print(exhausted)  # a clean outcome: the caller skips training
    return 0


def add_commands(commands: Commands) -> None:
    data = commands.group("data", "fetch the demo dataset or ingest a new batch")
    data.add("fetch", "write the demo data into data/", _fetch)
    data.add("ingest", "add the next batch of new rows", _ingest)
