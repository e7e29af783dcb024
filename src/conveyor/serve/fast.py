"""The fast exact path: the fitted Pipeline compiled, when the model loads, into an encoder and flat trees.

scikit-learn spends ~3 ms on a one-row DataFrame (pandas, input validation, one Cython call per tree) while the
trees themselves need microseconds. ONNX is no way out for this model: skl2onnx's HistGradientBoosting
converter reads categorical splits as numeric thresholds. So this module derives, from the loaded Pipeline:

- an encoder: per feature, the number the trees read. Category codes come from tables made by running the
  Pipeline's own fitted transformers over every declared category, a missing value and an unknown value;
- a forest: every tree's nodes in flat arrays, with, for each column the trees read, a table from the
  interval its value falls in to the next node of every split on it. One row's next-node array is a few table
  rows joined; each tree's leaf is then reached by pointer jumping.

Leaf values are summed in tree order from the baseline, as scikit-learn sums them, and go through the model's
own inverse link, so probabilities equal `predict_proba` bit for bit. Batches larger than SMALL_BATCH use the
trees' own Cython predictor on the encoded rows. The loader checks equality against the Pipeline and keeps the
Pipeline when they differ.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from conveyor.config import Feature
from conveyor.serve.reference import Record, to_frame

UNKNOWN = "\x00unknown category\x00"  # a value no category list can hold
SMALL_BATCH = 32  # rows evaluated one by one with numpy; larger batches go to the Cython predictor
MISSING_SLOT = 256  # category codes are below 256 (max_bins <= 255)


class Unsupported(Exception):
    """The Pipeline is not of a shape this module compiles; the reference path serves it."""


class Column(NamedTuple):
    feature: str
    codes: dict[str, float] | None  # None: a number the Pipeline passes through unchanged
    missing: float
    unknown: float


def _tree_input(pipeline: Pipeline, records: Sequence[Record], features: Mapping[str, Feature]) -> np.ndarray:
    """What the trees read for these records, computed by the Pipeline's own fitted transformers."""
    model = pipeline[-1]
    return model._preprocess_X(pipeline[:-1].transform(to_frame(records, features)), reset=False)


def _probe_values(feature: Feature) -> list[Any]:
    if feature.type == "category":
        return [*feature.values, None, UNKNOWN]
    low, high = feature.min, feature.max
    values: list[Any] = [low, high, (low + high) / 2]
    if feature.type == "int":
        values = [int(v) for v in values]
    return values + ([None] if feature.max_null_fraction > 0 else [])


def _same(column: np.ndarray, expected: np.ndarray) -> bool:
    return bool(np.all((column == expected) | (np.isnan(column) & np.isnan(expected))))


class Encoder:
    """Records -> the float64 matrix the trees read, with no pandas and no per-call validation."""

    def __init__(self, columns: list[Column]) -> None:
        self.columns = columns

    @classmethod
    def derive(cls, pipeline: Pipeline, features: Mapping[str, Feature]) -> Encoder:
        """Vary one feature at a time around a base record and see which tree column moves, and to what."""
        base = {name: _probe_values(f)[0] for name, f in features.items()}
        width = _tree_input(pipeline, [base], features).shape[1]
        columns: dict[int, Column] = {}
        for name, feature in features.items():
            values = _probe_values(feature)
            out = _tree_input(pipeline, [{**base, name: v} for v in values], features)
            moved = [k for k in range(width) if not _same(out[:, k], np.full(len(values), out[0, k]))]
            if len(moved) != 1 or moved[0] in columns:
                raise Unsupported(f"feature {name!r} moves tree columns {moved}, expected exactly one of its own")
            k = moved[0]
            if feature.type == "category":
                codes = {v: float(out[i, k]) for i, v in enumerate(feature.values)}
                columns[k] = Column(name, codes, float(out[-2, k]), float(out[-1, k]))
            else:
                sent = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                if not _same(out[:, k], sent):
                    raise Unsupported(
                        f"feature {name!r} is transformed before the trees; only pass-through is compiled"
                    )
                columns[k] = Column(name, None, np.nan, np.nan)
        if sorted(columns) != list(range(width)):
            raise Unsupported(f"tree columns {sorted(set(range(width)) - set(columns))} come from no feature")
        return cls([columns[k] for k in range(width)])

    def rows(self, records: Sequence[Record]) -> list[list[float]]:
        return [self._row(r) for r in records]

    def _row(self, record: Record) -> list[float]:
        row = []
        for feature, codes, missing, unknown in self.columns:
            value = record[feature]
            if value is None:
                row.append(missing)
            elif codes is None:
                row.append(float(value))
            else:
                row.append(codes.get(value, unknown))
        return row


class _Lookup(NamedTuple):
    """The next node of every split on one tree column, for each interval its value can fall in."""

    column: int
    bounds: list[float] | None  # numeric: the sorted thresholds; None: categorical, rows indexed by code
    table: np.ndarray  # (intervals + 1, splits): the last row is for a missing value


class Forest:
    """The trees of a binary HistGradientBoostingClassifier as flat arrays over all trees' nodes.

    Splits are grouped by the column they read. A column's value falls in one interval between its thresholds
    (or is one category code, or missing), and each interval decides all of that column's splits at once: so
    for each column a table gives, per interval, the next node of each of its splits. One row's next-node array
    is then one table row per column, joined, followed by the leaves (which point at themselves)."""

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


class FastPredictor:
    """Probabilities of the positive label, equal to the Pipeline's, at a fraction of the cost."""

    name = "fast"

    def __init__(self, encoder: Encoder, forest: Forest) -> None:
        self.encoder = encoder
        self.forest = forest

    def proba(self, records: Sequence[Record]) -> np.ndarray:
        return self.forest.proba(self.encoder.rows(records))


def compile_pipeline(pipeline: Any, features: Mapping[str, Feature]) -> FastPredictor:
    """The fast path for a Pipeline ending in a binary HistGradientBoostingClassifier; Unsupported otherwise."""
    model = pipeline[-1] if isinstance(pipeline, Pipeline) else pipeline
    # The exact class: a subclass may override how it predicts, and this path would silently bypass that.
    if not isinstance(pipeline, Pipeline) or type(model) is not HistGradientBoostingClassifier:
        raise Unsupported(f"{type(model).__name__} is not compiled; only HistGradientBoostingClassifier is")
    if model.n_trees_per_iteration_ != 1 or model._loss.__class__.__name__ != "HalfBinomialLoss":
        raise Unsupported("only binary classification is compiled")
    return FastPredictor(Encoder.derive(pipeline, features), Forest(model))
