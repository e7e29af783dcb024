"""`conveyor data ingest`: move the next slice of the incoming pool into a new batch file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from conveyor.config import Settings
from conveyor.data.frames import batches
from conveyor.errors import ConveyorError


def run(settings: Settings) -> Path:
    """Write the next batch (the demo's weekly new data) and return its path."""
    found = batches(settings)
    offset = sum(len(pd.read_csv(p, dtype="string")) for p in found)
    if not settings.data.incoming_path.exists():
        raise ConveyorError(f"{settings.data.incoming_path}: the incoming pool does not exist; run the fetch first.")
    raw = pd.read_csv(settings.data.incoming_path, dtype="string", keep_default_na=False)
    if offset >= len(raw):
        raise ConveyorError(
            f"{settings.data.incoming_path}: all {len(raw)} incoming rows are already ingested; "
            "there is no new batch to add."
        )
    rows = settings.data.ingest_rows
    target = settings.data.batches_dir / f"batch-{len(found) + 1:04d}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    raw.iloc[offset : offset + rows].to_csv(target, index=False, lineterminator="\n")
    return target
