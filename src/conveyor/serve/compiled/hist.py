"""HistGradientBoostingClassifier compiled: every tree's nodes in flat arrays, with, for each column the trees
read, a table from the interval its value falls in to the next node of every split on it. One row's next-node
array is a few table rows joined; each tree's leaf is then reached by pointer jumping.

Leaf values are summed in tree order from the baseline, as scikit-learn sums them
(`sklearn.ensemble._hist_gradient_boosting.gradient_boosting._raw_predict`), and go through the model's own
inverse link, so probabilities equal `predict_proba` bit for bit. Batches larger than SMALL_BATCH use the trees'
own Cython predictor on the encoded rows.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import NamedTuple

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from conveyor.serve.compiled.encoder import SMALL_BATCH

MISSING_SLOT = 256  # category codes are below 256 (max_bins <= 255)


class _Lookup(NamedTuple):
    """The next node of every split on one tree column, for each interval its value can fall in."""

    column: int
    bounds: list[float] | None  # numeric: the sorted thresholds; None: categorical, rows indexed by code
    table: np.ndarray  # (intervals + 1, splits): the last row is for a missing value


class Forest:
    """Exact: bit for bit. The trees of a binary HistGradientBoostingClassifier as flat arrays over all trees' nodes.

    Splits are grouped by the column they read. A column's value falls in one interval between its thresholds
    (or is one category code, or missing), and each interval decides all of that column's splits at once: so
    for each column a table gives, per interval, the next node of each of its splits. One row's next-node array
    is then one table row per column, joined, followed by the leaves (which point at themselves)."""

    tolerance = 0.0

    def __init__(self, model: HistGradientBoostingClassifier) -> None:
        self._predictors = [trees[0] for trees in model._predictors]
        self._baseline = float(model._baseline_prediction.ravel()[0])
        self._inverse = model._loss.link.inverse
        self._known, self._f_idx_map = model._bin_mapper.make_known_categories_bitsets()

        sizes = [len(p.nodes) for p in self._predictors]
        starts = np.cumsum([0, *sizes[:-1]])
        nodes = np.concatenate([p.nodes for p in self._predictors])
        tree = np.repeat(np.arange(len(sizes)), sizes)
        leaf = nodes["is_leaf"].astype(bool)
        splits = np.flatnonzero(~leaf)
        splits = splits[np.argsort(nodes["feature_idx"][splits], kind="stable")]
        order = np.concatenate([splits, np.flatnonzero(leaf)])
        renumber = np.empty(len(nodes), dtype=np.intp)
        renumber[order] = np.arange(len(nodes))

        self._roots = renumber[starts]
        self._depth = int(nodes["depth"].max())
        self._values = nodes["value"][order].astype(np.float64)
        self._size, self._split_count = len(nodes), len(splits)
        self._scratch = threading.local()
        left = renumber[nodes["left"][splits].astype(np.intp) + starts[tree[splits]]]
        right = renumber[nodes["right"][splits].astype(np.intp) + starts[tree[splits]]]
        columns = nodes["feature_idx"][splits]
        self._lookups = []
        for column in np.unique(columns):
            on = columns == column
            picked = splits[on]
            if nodes["is_categorical"][picked].any():
                goes_left = self._categorical(nodes[picked], tree[picked], int(column))
                bounds = None
            else:
                goes_left, bounds = self._numeric(nodes[picked])
            self._lookups.append(_Lookup(int(column), bounds, np.where(goes_left, left[on], right[on])))

    @staticmethod
    def _numeric(nodes: np.ndarray) -> tuple[np.ndarray, list[float]]:
        """Interval k holds the values v with bounds[k-1] < v <= bounds[k]; a split with threshold t sends
        them left when v <= t, i.e. when t >= bounds[k]. Past the last bound all go right."""
        threshold = nodes["num_threshold"].astype(np.float64)
        bounds = np.unique(threshold)
        goes_left = np.vstack(
            [
                threshold[None, :] >= bounds[:, None],
                np.zeros((1, len(nodes)), dtype=bool),
                nodes["missing_go_to_left"].astype(bool)[None, :],
            ]
        )
        return goes_left, bounds.tolist()

    def _categorical(self, nodes: np.ndarray, trees: np.ndarray, column: int) -> np.ndarray:
        """Rows 0..255 are category codes, as the Cython predictor decides them: the left bitset first, then
        codes the model never saw follow the missing direction; the last row is a missing value."""
        left_bits = np.array(
            [self._predictors[t].raw_left_cat_bitsets[b] for t, b in zip(trees, nodes["bitset_idx"], strict=True)],
            dtype=np.uint32,
        ).reshape(-1, 8)
        known_bits = self._known[self._f_idx_map[column]]
        code = np.arange(MISSING_SLOT)
        shift = (code & 31).astype(np.uint32)
        in_left = (left_bits[:, code >> 5] >> shift) & 1
        in_known = (known_bits[code >> 5] >> shift) & 1
        missing_left = nodes["missing_go_to_left"].astype(bool)
        goes_left = (in_left == 1) | ((in_known[None, :] == 0) & missing_left[:, None])
        return np.vstack([goes_left.T, missing_left[None, :]])

    def _raw_one(self, row: list[float]) -> float:
        parts = []
        for column, bounds, table in self._lookups:
            value = row[column]
            if value != value:  # NaN: missing
                parts.append(table[-1])
            elif bounds is not None:
                parts.append(table[bisect_left(bounds, value)])
            else:  # a negative or unseen code is treated as missing, as the Cython predictor does
                parts.append(table[int(value) if 0 <= value < MISSING_SLOT else -1])
        following = getattr(self._scratch, "following", None)
        if following is None:  # one per thread; its tail (the leaves, pointing at themselves) never changes
            following = self._scratch.following = np.arange(self._size, dtype=np.intp)
        np.concatenate(parts, out=following[: self._split_count])
        node = self._roots
        for _ in range(self._depth):
            node = following[node]
        # A cumulative sum adds in tree order like scikit-learn; np.sum would add pairwise and differ in the
        # last bits.
        return float(np.cumsum(np.concatenate(([self._baseline], self._values[node])))[-1])

    def _raw_many(self, rows: np.ndarray) -> np.ndarray:
        raw = np.zeros(len(rows)) + self._baseline
        for predictor in self._predictors:
            raw += predictor.predict(rows, self._known, self._f_idx_map, 1)
        return raw

    def proba(self, rows: list[list[float]]) -> np.ndarray:
        if len(rows) <= SMALL_BATCH:
            raw = np.array([self._raw_one(row) for row in rows], dtype=np.float64)
        else:
            raw = self._raw_many(np.array(rows, dtype=np.float64).reshape(len(rows), -1))
        return self._inverse(raw)
