"""Read the data: load, split into train and holdout, and the reference/current windows the drift check compares."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from conveyor.config import Settings
from conveyor.errors import ConveyorError

BATCH_PATTERN = re.compile(r"^batch-(\d{4})\.csv$")


def read_csv(path: Path, settings: Settings) -> pd.DataFrame:
    """Read a CSV: numeric features as float64, everything else as str objects with NaN for empty fields.

    A file with no header, no rows or a row whose field count differs from the header's is refused in one
    sentence. In a numeric column, the cells that are not numbers stay text beside the parsed numbers, so the
    quality check counts exactly those cells and `not_numbers` can name them."""
    if not path.exists():
        raise ConveyorError(f"{path}: the data file does not exist; run `conveyor data prepare` first.")
    _check_shape(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    for name in settings.data.numeric:
        if name in frame.columns:
            numbers = pd.to_numeric(frame[name], errors="coerce")
            bad = frame[name].notna() & numbers.isna()
            frame[name] = numbers.astype("float64") if not bad.any() else numbers.astype(object).mask(bad, frame[name])
    return frame


def _check_shape(path: Path) -> None:
    """A header, at least one row, and every row with the header's field count; else one sentence. (pandas
    raises a traceback for an empty file and pads a short row, such as a truncated last line, with NaN.)"""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise ConveyorError(f"{path}: the file is empty; expected a header row naming the columns, then rows.")
        rows = 0
        for row in reader:
            if not row:
                continue  # a blank line, which pandas skips too
            if len(row) != len(header):
                raise ConveyorError(
                    f"{path}: line {reader.line_num} has {len(row)} fields, expected {len(header)} as in the header "
                    "(is the file truncated?)."
                )
            rows += 1
    if not rows:
        raise ConveyorError(f"{path}: the file has a header but no rows; expected at least one row of data.")


def not_numbers(frame: pd.DataFrame, settings: Settings) -> str | None:
    """One sentence for the first numeric feature with cells that are not numbers, or None: fitting on text
    would fail deep inside scikit-learn."""
    for name in settings.data.numeric:
        if name in frame.columns and frame[name].dtype == object:
            bad = frame[name][frame[name].map(lambda v: isinstance(v, str))]
            if len(bad):
                shown = ", ".join(repr(v) for v in bad.unique()[:3])
                return (
                    f"data.features.{name}: {len(bad)} of {len(frame)} values are not numbers (e.g. {shown}); "
                    "expected numbers or empty fields."
                )
    return None


def batches(settings: Settings) -> list[Path]:
    """Ingested batches, oldest first."""
    folder = settings.data.batches_dir
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if BATCH_PATTERN.match(p.name))


def load_training(settings: Settings) -> pd.DataFrame:
    """The training pool plus every ingested batch."""
    frames = [read_csv(settings.data.path, settings)] + [read_csv(p, settings) for p in batches(settings)]
    return pd.concat(frames, ignore_index=True)


def features_and_target(frame: pd.DataFrame, settings: Settings) -> tuple[pd.DataFrame, np.ndarray]:
    """X with the configured feature columns in order, y as 0/1 for the positive label."""
    x = frame[list(settings.data.features)]
    y = (frame[settings.data.target] == settings.data.positive_label).to_numpy(dtype=np.int64)
    return x, y


def holdout_mask(frame: pd.DataFrame, settings: Settings) -> np.ndarray:
    """True for holdout rows. Decided by a hash of each row, so a row keeps its side as data grows:
    a champion is never scored on rows it was trained on."""
    columns = [*settings.data.features, settings.data.target]
    key = f"{settings.split.seed:016d}"[-16:]
    hashes = pd.util.hash_pandas_object(frame[columns], index=False, hash_key=key).to_numpy()
    return (hashes % 10_000) < int(settings.split.test_size * 10_000)


def split(frame: pd.DataFrame, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout)."""
    mask = holdout_mask(frame, settings)
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)


def windows(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(reference, current, what current is) for the drift check.

    The reference is the training snapshot before the newest batch; the current window is the newest
    batch. With no batch ingested yet, the holdout stands in as the current window."""
    found = batches(settings)
    if found:
        reference = pd.concat(
            [read_csv(settings.data.path, settings)] + [read_csv(p, settings) for p in found[:-1]],
            ignore_index=True,
        )
        return reference, read_csv(found[-1], settings), found[-1].name
    train, holdout = split(load_training(settings), settings)
    return train, holdout, "holdout"
