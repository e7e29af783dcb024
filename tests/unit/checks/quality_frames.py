"""Small, clean training frames built from the settings, shaped like `conveyor.data.read_csv` output."""

from __future__ import annotations

import numpy as np
import pandas as pd

from conveyor.config import Settings

ROWS = 1200  # 3 rows are 0.25%, 12 rows 1.0%


def negative_label(settings: Settings) -> str:
    """A target value other than the positive label (the settings name only the positive one)."""
    return f"not {settings.data.positive_label}"


def clean_frame(settings: Settings, rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Every configured column in range, no nulls, no duplicate rows, label rate mid-way in its bounds."""
    gate = settings.gates.quality
    assert gate.rows.min <= rows <= gate.rows.max, f"test frame of {rows} rows is outside the row gate"
    rng = np.random.default_rng(seed)
    pool = 2 * rows  # drawn with room to drop the rare duplicate
    columns: dict[str, pd.Series] = {}
    for name, feature in settings.data.features.items():
        if feature.type == "category":
            columns[name] = pd.Series(rng.choice(feature.values, pool), dtype="string")
        elif feature.type == "int":
            columns[name] = pd.Series(rng.integers(feature.min, feature.max, pool, endpoint=True), dtype="float64")
        else:
            columns[name] = pd.Series(rng.uniform(feature.min, feature.max, pool), dtype="float64")
    frame = pd.DataFrame(columns).drop_duplicates().head(rows).reset_index(drop=True)
    assert len(frame) == rows, "could not draw enough distinct rows"
    positives = round(rows * (gate.label_rate.min + gate.label_rate.max) / 2)
    labels = [settings.data.positive_label] * positives + [negative_label(settings)] * (rows - positives)
    frame[settings.data.target] = pd.Series(rng.permutation(labels), dtype="string")
    return frame
