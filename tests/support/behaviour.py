"""Tiny hand-written models for the behaviour check: one that behaves, and one that breaks each rule."""

from __future__ import annotations

import numpy as np
import pandas as pd


class Sensible:
    """P(>50K) rises with education, marriage, capital gain and hours; it never reads native_country."""

    def score(self, x: pd.DataFrame) -> np.ndarray:
        return (
            0.6 * (x["education_num"].astype(float) - 10)
            + 2.5 * (x["marital_status"] == "Married-civ-spouse")
            + 0.0001 * x["capital_gain"].astype(float)
            + 0.05 * (x["hours_per_week"].astype(float) - 40)
            - 2.0
        ).to_numpy(dtype=float)

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.score(x)))
        return np.column_stack([1 - p, p])


class ReadsCountry(Sensible):
    """Breaks invariance: the country of birth is worth a lot (a long country name, here)."""

    def score(self, x: pd.DataFrame) -> np.ndarray:
        return super().score(x) + 3.0 * (x["native_country"].str.len() > 7).to_numpy()


class EducationHurts(Sensible):
    """Breaks the directional expectation: more education, a lower score."""

    def score(self, x: pd.DataFrame) -> np.ndarray:
        return super().score(x) - 1.5 * x["education_num"].astype(float).to_numpy()


class AlwaysYes(Sensible):
    """Breaks minimum functionality: everyone earns >50K."""

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return np.column_stack([np.full(len(x), 0.1), np.full(len(x), 0.9)])
