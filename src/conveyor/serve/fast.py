"""The fast exact path: the fitted Pipeline compiled, when the model loads, into an encoder and the estimator's
arithmetic in plain Python lists and numpy, in `conveyor.serve.compiled`.

scikit-learn spends ~3 ms on a one-row DataFrame (pandas, input validation, one Cython call per tree) while the
model itself needs microseconds. The compiled parts:

- `encoder`: records -> the row the estimator reads, derived from the Pipeline's own fitted transformers;
- `hist`: HistGradientBoostingClassifier (column tables and pointer jumping), bit for bit;
- `trees`: RandomForestClassifier and ExtraTreesClassifier (bit for bit with n_jobs 1, else within 1e-12),
  GradientBoostingClassifier (bit for bit);
- `linear`: LogisticRegression, LogisticRegressionCV, SGDClassifier(loss="log_loss"), within 1e-12.

Each compiled model states its `tolerance`: the largest difference from `predict_proba` it promises. The loader
checks the fast path against the Pipeline within that tolerance and keeps the Pipeline when they differ.
Anything else (another estimator, a subclass of a supported one, preprocessing the encoder cannot reproduce)
raises Unsupported and is served by the Pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.pipeline import Pipeline

from conveyor.config import Feature
from conveyor.serve.compiled import hist, linear, trees
from conveyor.serve.compiled.encoder import SMALL_BATCH, Encoder, Unsupported, output_is_sparse, probe_values
from conveyor.serve.reference import Record

__all__ = [
    "SMALL_BATCH",
    "SUPPORTED",
    "Compiled",
    "Encoder",
    "FastPredictor",
    "Unsupported",
    "compile_pipeline",
]


class Compiled(Protocol):
    """An estimator's arithmetic on encoded rows: probabilities of the positive label."""

    tolerance: float

    def proba(self, rows: list[list[float]]) -> np.ndarray: ...


class FastPredictor:
    """Probabilities of the positive label, equal to the Pipeline's within `tolerance`, at a fraction of the cost."""

    name = "fast"

    def __init__(self, encoder: Encoder, model: Compiled) -> None:
        self.encoder = encoder
        self.model = model
        self.tolerance = model.tolerance

    def proba(self, records: Sequence[Record]) -> np.ndarray:
        return self.model.proba(self.encoder.rows(records))


SUPPORTED = (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    *linear.TYPES,
)


def _compile_model(model: Any, encoder: Encoder, sparse_input: bool) -> Compiled:
    kind = type(model)
    if kind is HistGradientBoostingClassifier:
        if model.n_trees_per_iteration_ != 1 or model._loss.__class__.__name__ != "HalfBinomialLoss":
            raise Unsupported("only binary classification is compiled")
        return hist.Forest(model)
    if encoder.may_be_nan:
        raise Unsupported(f"missing values reach the {kind.__name__} unimputed; only imputed inputs are compiled")
    if kind is GradientBoostingClassifier:
        return trees.Boosting(model)
    if kind in linear.TYPES:
        return linear.Linear(model, sparse_input)
    return trees.Forest(model)


def compile_pipeline(pipeline: Any, features: Mapping[str, Feature]) -> FastPredictor:
    """The fast path for a Pipeline ending in a supported binary classifier; Unsupported otherwise."""
    if not isinstance(pipeline, Pipeline):
        raise Unsupported(f"{type(pipeline).__name__} is not a Pipeline")
    model = pipeline[-1]
    # The exact class: a subclass may override how it predicts, and this path would silently bypass that.
    if type(model) not in SUPPORTED:
        names = ", ".join(cls.__name__ for cls in SUPPORTED)
        raise Unsupported(f"{type(model).__name__} is not compiled; only {names} are")
    encoder = Encoder.derive(pipeline, features)
    base = [{name: probe_values(f)[0] for name, f in features.items()}]
    return FastPredictor(encoder, _compile_model(model, encoder, output_is_sparse(pipeline, base, features)))
