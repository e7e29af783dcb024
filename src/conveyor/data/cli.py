"""`conveyor data prepare|fetch|ingest`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from conveyor.config import load_settings

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _prepare(args: argparse.Namespace) -> int:
    from conveyor.data import prepare

    print(prepare.prepare(load_settings(args.params)))
    return 0


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
    data = commands.group("data", "get the data ready (data.source), fetch the demo dataset or ingest a new batch")
    data.add("prepare", "demo: fetch the demo data; dvc: check data/ is the version data.dvc records", _prepare)
    data.add("fetch", "write the demo data into data/ (data.source: demo only)", _fetch)
    data.add("ingest", "add the next batch of new rows", _ingest)
