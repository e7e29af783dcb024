"""Read the data: load, split into train and holdout, and the reference/current windows the drift check compares."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from conveyor.config import Settings
from conveyor.errors import ConveyorError

BATCH_PATTERN = re.compile(r"^batch-(\d{4})\.csv$")


def read_csv(path: Path, settings: Settings) -> pd.DataFrame:
    """Read a CSV: numeric features as float64, everything else as str objects with NaN for empty fields.

    A numeric column with a value that is not a number stays text, so the quality check names a type error."""
    if not path.exists():
        raise ConveyorError(f"{path}: the data file does not exist; run `conveyor data fetch` first.")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    for name in settings.data.numeric:
        if name in frame.columns:
            numbers = pd.to_numeric(frame[name], errors="coerce")
            if numbers.notna().sum() == frame[name].notna().sum():
                frame[name] = numbers.astype("float64")
    return frame


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
