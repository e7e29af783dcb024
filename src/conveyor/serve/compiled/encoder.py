"""The preprocessing of a fitted Pipeline, derived at load time: records -> the float64 row its estimator reads.

Categorical features (ordinal codes or one-hot blocks) are read off tables made by running the Pipeline's own
fitted transformers over every declared category, a missing value and an unknown one. Numeric features are
passed through, or imputed and standardised with the fitted SimpleImputer and StandardScaler statistics, in the
order of `StandardScaler.transform` (`X -= mean_`, then `X /= scale_`). The encoder is then checked against the
Pipeline on probe records; anything it cannot reproduce exactly is Unsupported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from conveyor.config import Feature
from conveyor.serve.reference import Record, to_frame

UNKNOWN = "\x00unknown category\x00"  # a value no category list can hold
SMALL_BATCH = 32  # rows evaluated one by one in Python; larger batches go to numpy or scikit-learn's Cython


class Unsupported(Exception):
    """The Pipeline is not of a shape this package compiles; the reference path serves it."""


class Numeric(NamedTuple):
    """A number v becomes (v - mean) / scale; a missing one becomes (fill - mean) / scale."""

    fill: float
    mean: float
    scale: float


class Block(NamedTuple):
    """The estimator columns one feature writes: for a category, its nonzero (column, value) pairs per value."""

    feature: str
    column: int  # numeric: its column; category: unused (-1)
    numeric: Numeric | None
    codes: dict[str, tuple[tuple[int, float], ...]]
    missing: tuple[tuple[int, float], ...]
    unknown: tuple[tuple[int, float], ...]


def model_input(pipeline: Pipeline, records: Sequence[Record], features: Mapping[str, Feature]) -> np.ndarray:
    """What the estimator reads for these records, computed by the Pipeline's own fitted transformers (dense)."""
    out = pipeline[:-1].transform(to_frame(records, features))
    model = pipeline[-1]
    if isinstance(model, HistGradientBoostingClassifier):
        out = model._preprocess_X(out, reset=False)
    return out.toarray() if sparse.issparse(out) else np.asarray(out, dtype=np.float64)


def output_is_sparse(pipeline: Pipeline, records: Sequence[Record], features: Mapping[str, Feature]) -> bool:
    """Whether the preprocessing hands the estimator a sparse matrix (it changes how a dot product is summed)."""
    return sparse.issparse(pipeline[:-1].transform(to_frame(records, features)))


def probe_values(feature: Feature) -> list[Any]:
    """Every category with a missing and an unknown value; for numbers, both ends, the middle and missing."""
    if feature.type == "category":
        return [*feature.values, None, UNKNOWN]
    low, high = feature.min, feature.max
    values: list[Any] = [low, high, (low + high) / 2]
    if feature.type == "int":
        values = [int(v) for v in values]
    return values + ([None] if feature.max_null_fraction > 0 else [])


def _same(got: np.ndarray, expected: np.ndarray) -> bool:
    return got.shape == expected.shape and bool(np.all((got == expected) | (np.isnan(got) & np.isnan(expected))))


def _nonzero(row: np.ndarray, columns: list[int]) -> tuple[tuple[int, float], ...]:
    return tuple((k, float(row[k])) for k in columns if row[k] != 0)  # NaN != 0: kept


def _numeric_steps(pipeline: Pipeline, name: str) -> Numeric:
    """The fitted imputer and scaler statistics the ColumnTransformer applies to feature `name`."""
    prep = pipeline[:-1][-1] if len(pipeline) > 1 else None
    for _, transformer, columns in getattr(prep, "transformers_", []):
        if isinstance(columns, str) or name not in list(columns):
            continue
        i = list(columns).index(name)
        steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
        fill, mean, scale = math.nan, 0.0, 1.0
        for step in steps:
            if step in (None, "passthrough") or (type(step) is FunctionTransformer and step.func is None):
                continue
            if type(step) is SimpleImputer and (mean, scale) == (0.0, 1.0) and not step.add_indicator:
                fill = float(step.statistics_[i])
            elif type(step) is StandardScaler:
                mean = float(step.mean_[i]) if step.with_mean else 0.0
                scale = float(step.scale_[i]) if step.with_std else 1.0
            else:
                raise Unsupported(f"feature {name!r} goes through {type(step).__name__}, which is not compiled")
        return Numeric(fill, mean, scale)
    raise Unsupported(f"feature {name!r} is not read by a ColumnTransformer this package knows")


class Encoder:
    """Records -> the float64 rows the estimator reads, with no pandas and no per-call validation."""

    def __init__(self, blocks: list[Block], width: int) -> None:
        self.blocks = blocks
        self.width = width
        self._zeros = [0.0] * width
        self.may_be_nan = any(
            (b.numeric is not None and math.isnan(b.numeric.fill))
            or any(math.isnan(v) for pairs in (*b.codes.values(), b.missing, b.unknown) for _, v in pairs)
            for b in blocks
        )

    @classmethod
    def derive(cls, pipeline: Pipeline, features: Mapping[str, Feature]) -> Encoder:
        """Vary one feature at a time around a base record and see which columns move, and to what; then check
        the result against the Pipeline on every probe value."""
        base = {name: probe_values(f)[0] for name, f in features.items()}
        width = model_input(pipeline, [base], features).shape[1]
        blocks: list[Block] = []
        owner: dict[int, str] = {}
        probes: list[Record] = []
        for name, feature in features.items():
            values = probe_values(feature)
            variants = [{**base, name: v} for v in values]
            probes += variants
            out = model_input(pipeline, variants, features)
            moved = [k for k in range(width) if not _same(out[:, k], np.full(len(values), out[0, k]))]
            taken = [k for k in moved if k in owner]
            if not moved or taken or (feature.type != "category" and len(moved) != 1):
                raise Unsupported(f"feature {name!r} moves estimator columns {moved}, expected columns of its own")
            owner.update(dict.fromkeys(moved, name))
            if feature.type == "category":
                codes = {v: _nonzero(out[i], moved) for i, v in enumerate(feature.values)}
                blocks.append(Block(name, -1, None, codes, _nonzero(out[-2], moved), _nonzero(out[-1], moved)))
            else:
                numeric = Numeric(math.nan, 0.0, 1.0) if len(pipeline) == 1 else _numeric_steps(pipeline, name)
                blocks.append(Block(name, moved[0], numeric, {}, (), ()))
        if sorted(owner) != list(range(width)):
            raise Unsupported(f"estimator columns {sorted(set(range(width)) - set(owner))} come from no feature")
        encoder = cls(blocks, width)
        if not _same(np.array(encoder.rows(probes)), model_input(pipeline, probes, features)):
            raise Unsupported("the derived preprocessing differs from the Pipeline's on probe records")
        return encoder

    def rows(self, records: Sequence[Record]) -> list[list[float]]:
        return [self._row(r) for r in records]

    def _row(self, record: Record) -> list[float]:
        row = self._zeros.copy()
        for feature, column, numeric, codes, missing, unknown in self.blocks:
            value = record[feature]
            if numeric is not None:
                fill, mean, scale = numeric
                row[column] = ((fill if value is None else float(value)) - mean) / scale
            else:
                for k, v in missing if value is None else codes.get(value, unknown):
                    row[k] = v
        return row
