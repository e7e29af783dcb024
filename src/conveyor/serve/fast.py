"""The fast exact path: the fitted Pipeline compiled, when the model loads, into an encoder and flat trees.

scikit-learn spends ~3 ms on a one-row DataFrame (pandas, input validation, one Cython call per tree) while the
trees themselves need microseconds. ONNX is no way out for this model: skl2onnx's HistGradientBoosting
converter reads categorical splits as numeric thresholds. So this module derives, from the loaded Pipeline:

- an encoder: per feature, the number the trees read. Category codes come from tables made by running the
  Pipeline's own fitted transformers over every declared category, a missing value and an unknown value;
- a forest: every tree's nodes in flat arrays. One row is decided at every split node at once with numpy,
  then each tree's leaf is reached by pointer jumping.

Leaf values are summed in tree order from the baseline, as scikit-learn sums them, and go through the model's
own inverse link, so probabilities equal `predict_proba` bit for bit. Batches larger than SMALL_BATCH use the
trees' own Cython predictor on the encoded rows. The loader checks equality against the Pipeline and keeps the
Pipeline when they differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from conveyor.config import Feature
from conveyor.serve.reference import Record, to_frame

UNKNOWN = "\x00unknown category\x00"  # a value no category list can hold
SMALL_BATCH = 32  # rows evaluated one by one with numpy; larger batches go to the Cython predictor
MISSING_SLOT = 256  # categorical codes are < 256 (max_bins <= 255); this column of the table means "missing"


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

    def encode(self, records: Sequence[Record]) -> np.ndarray:
        return np.array([self._row(r) for r in records], dtype=np.float64).reshape(len(records), len(self.columns))

    def _row(self, record: Record) -> list[float]:
        row = []
        for feature, codes, missing, unknown in self.columns:
            value = record[feature]
            if value is None:
                row.append(missing)
            elif codes is None:
                row.append(value)
            else:
                row.append(codes.get(value, unknown))
        return row


class Forest:
    """The trees of a binary HistGradientBoostingClassifier as flat arrays over all trees' nodes, renumbered
    so that numeric splits come first, then categorical splits, then leaves: one row's decisions are then two
    contiguous arrays, and the next-node table a copy of a template whose leaves point at themselves."""

    def __init__(self, model: HistGradientBoostingClassifier) -> None:
        self._predictors = [trees[0] for trees in model._predictors]
        self._baseline = float(model._baseline_prediction.ravel()[0])
        self._inverse = model._loss.link.inverse
        self._known, self._f_idx_map = model._bin_mapper.make_known_categories_bitsets()

        sizes = [len(p.nodes) for p in self._predictors]
        offsets = np.repeat(np.cumsum([0, *sizes[:-1]]), sizes)
        nodes = np.concatenate([p.nodes for p in self._predictors])
        leaf = nodes["is_leaf"].astype(bool)
        categorical = ~leaf & nodes["is_categorical"].astype(bool)
        numeric = ~leaf & ~categorical
        order = np.concatenate([np.flatnonzero(numeric), np.flatnonzero(categorical), np.flatnonzero(leaf)])
        renumber = np.empty(len(nodes), dtype=np.intp)
        renumber[order] = np.arange(len(nodes), dtype=np.intp)
        splits = order[: int(numeric.sum() + categorical.sum())]

        self._roots = renumber[np.cumsum([0, *sizes[:-1]])]
        self._depth = int(nodes["depth"].max())
        self._values = nodes["value"][order].astype(np.float64)
        self._template = np.arange(len(nodes), dtype=np.intp)  # leaves point at themselves
        self._split_count = len(splits)
        self._left = renumber[nodes["left"][splits].astype(np.intp) + offsets[splits]]
        self._right = renumber[nodes["right"][splits].astype(np.intp) + offsets[splits]]

        self._num_feature = nodes["feature_idx"][numeric].astype(np.intp)
        self._num_threshold = nodes["num_threshold"][numeric].astype(np.float64)
        self._num_missing_left = nodes["missing_go_to_left"][numeric].astype(bool)
        self._cat_feature = nodes["feature_idx"][categorical].astype(np.intp)
        self._cat_table = self._categorical_table(nodes, categorical)
        self._cat_rows = np.arange(len(self._cat_feature)) * (MISSING_SLOT + 1)

    def _categorical_table(self, nodes: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        """For each categorical split and each code 0..255 (and missing), whether the row goes left: as the
        Cython predictor decides it, left bitset first, then unknown codes follow the missing direction."""
        tree = np.searchsorted(
            np.cumsum([len(p.nodes) for p in self._predictors]), np.flatnonzero(categorical), "right"
        )
        left_bits = np.array(
            [
                self._predictors[t].raw_left_cat_bitsets[b]
                for t, b in zip(tree, nodes["bitset_idx"][categorical], strict=True)
            ],
            dtype=np.uint32,
        ).reshape(-1, 8)
        known_bits = self._known[self._f_idx_map[nodes["feature_idx"][categorical]]].reshape(-1, 8)
        code = np.arange(MISSING_SLOT)
        in_left = (left_bits[:, code >> 5] >> (code & 31).astype(np.uint32)) & 1
        in_known = (known_bits[:, code >> 5] >> (code & 31).astype(np.uint32)) & 1
        missing_left = nodes["missing_go_to_left"][categorical].astype(bool)[:, None]
        goes_left = (in_left == 1) | ((in_known == 0) & missing_left)
        return np.hstack([goes_left, missing_left]).ravel()

    def _raw_one(self, row: np.ndarray) -> float:
        value = row[self._num_feature]
        numeric_left = (value <= self._num_threshold) | (np.isnan(value) & self._num_missing_left)
        slot = np.where(np.isnan(row) | (row < 0), MISSING_SLOT, row).astype(np.intp)
        categorical_left = self._cat_table[self._cat_rows + slot[self._cat_feature]]
        following = self._template.copy()
        following[: self._split_count] = np.where(
            np.concatenate((numeric_left, categorical_left)), self._left, self._right
        )
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

    def proba(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) <= SMALL_BATCH:
            raw = np.array([self._raw_one(row) for row in rows], dtype=np.float64)
        else:
            raw = self._raw_many(np.ascontiguousarray(rows))
        return self._inverse(raw)


class FastPredictor:
    """Probabilities of the positive label, equal to the Pipeline's, at a fraction of the cost."""

    name = "fast"

    def __init__(self, encoder: Encoder, forest: Forest) -> None:
        self.encoder = encoder
        self.forest = forest

    def proba(self, records: Sequence[Record]) -> np.ndarray:
        return self.forest.proba(self.encoder.encode(records))


def compile_pipeline(pipeline: Any, features: Mapping[str, Feature]) -> FastPredictor:
    """The fast path for a Pipeline ending in a binary HistGradientBoostingClassifier; Unsupported otherwise."""
    model = pipeline[-1] if isinstance(pipeline, Pipeline) else pipeline
    # The exact class: a subclass may override how it predicts, and this path would silently bypass that.
    if not isinstance(pipeline, Pipeline) or type(model) is not HistGradientBoostingClassifier:
        raise Unsupported(f"{type(model).__name__} is not compiled; only HistGradientBoostingClassifier is")
    if model.n_trees_per_iteration_ != 1 or model._loss.__class__.__name__ != "HalfBinomialLoss":
        raise Unsupported("only binary classification is compiled")
    return FastPredictor(Encoder.derive(pipeline, features), Forest(model))
