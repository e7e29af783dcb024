"""`conveyor data ingest`: move the next slice of the incoming pool into a new batch file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from conveyor.config import Settings
from conveyor.data.frames import batches
from conveyor.errors import ConveyorError


class NoNewData(ConveyorError):
    """The incoming pool is exhausted: not a failure, there is simply nothing new to train on."""


@dataclass(frozen=True)
class Batch:
    path: Path
    number: int
    rows: int


def next_batch(settings: Settings) -> Batch:
    """Write the next batch (the demo's weekly new data); raise NoNewData when every incoming row is ingested."""
    found = batches(settings)
    offset = sum(len(pd.read_csv(p, dtype="string")) for p in found)
    if not settings.data.incoming_path.exists():
        raise ConveyorError(f"{settings.data.incoming_path}: the incoming pool does not exist; run the fetch first.")
    raw = pd.read_csv(settings.data.incoming_path, dtype="string", keep_default_na=False)
    if offset >= len(raw):
        raise NoNewData(
            f"no new data: all {len(raw)} rows of {settings.data.incoming_path} are already ingested "
            f"in {len(found)} batches; nothing to train."
        )
    number = len(found) + 1
    target = settings.data.batches_dir / f"batch-{number:04d}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    written = raw.iloc[offset : offset + settings.data.ingest_rows]
    written.to_csv(target, index=False, lineterminator="\n")
    return Batch(target, number, len(written))


def run(settings: Settings) -> Path:
    """The new batch's path."""
    return next_batch(settings).path
