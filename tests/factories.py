"""Test data made from the settings, so no test needs to know the dataset."""

import numpy as np
import pandas as pd

from conveyor.config import Settings


def synthetic(settings: Settings, rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows that satisfy params.yaml: numbers inside their range, categories from their list."""
    rng = np.random.default_rng(seed)
    columns = {}
    for name, feature in settings.data.features.items():
        if feature.type == "category":
            columns[name] = rng.choice(feature.values, rows)
        else:
            columns[name] = rng.integers(int(feature.min), int(feature.max) + 1, rows)
    columns[settings.data.target] = rng.choice([settings.data.positive_label, "other"], rows, p=[0.25, 0.75])
    return pd.DataFrame(columns)
