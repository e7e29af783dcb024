"""Ensembles of scikit-learn's `Tree` compiled: RandomForest and ExtraTrees, and GradientBoosting.

scikit-learn's own predict_proba makes one Cython call per tree (plus input validation), which is most of its
cost for one row. Here every tree is walked in one call of `predict_stages` (`sklearn/ensemble/
_gradient_boosting.pyx`), the routine GradientBoosting predicts with: for each row and each tree in order, the
leaf is found as `Tree.apply` finds it (left when `X[i, feature] <= threshold`, on float32 values) and
`out[i] += scale * value[leaf]` is added. The encoded rows are rounded to float32 as `validate_data(dtype=
np.float32)` rounds them. Missing values never reach these trees (the encoder must impute them): `predict_stages`
does not route NaN as a tree fitted on missing values would.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier
from sklearn.ensemble._gradient_boosting import predict_stages
from sklearn.tree._tree import Tree

from conveyor.serve.compiled.encoder import Unsupported


def _float32(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float32).reshape(len(rows), -1)


def _positive_class_tree(tree: Tree) -> Tree:
    """The same nodes, with one value per node: the positive class's fraction (a regression tree's layout, which
    `predict_stages` reads). A copy: the model's own trees stay as they are for the reference path."""
    state = tree.__getstate__()
    copy = Tree(tree.n_features, np.array([1], dtype=np.intp), 1)
    copy.__setstate__({**state, "values": np.ascontiguousarray(state["values"][:, :, 1:2])})
    return copy


class Forest:
    """A binary RandomForestClassifier or ExtraTreesClassifier. Mirrors `ForestClassifier.predict_proba`
    (`sklearn/ensemble/_forest.py`): each tree's class fractions (`tree_.value`, normalised per node since
    scikit-learn 1.4 and returned as they are by `DecisionTreeClassifier.predict_proba`) are added into a zero
    array in tree order (`_accumulate_prediction`), then divided by the number of trees. Here `predict_stages`
    adds `1.0 * fraction` per tree from zero, in tree order, then the sum is divided the same way.

    Exact, bit for bit, with n_jobs 1 (or None): the same additions in the same order (1.0 * v is v). With more
    jobs scikit-learn adds the trees in whatever order its threads finish, so only 1e-12 is promised."""

    def __init__(self, model: RandomForestClassifier | ExtraTreesClassifier) -> None:
        if model.n_outputs_ != 1 or model.n_classes_ != 2:
            raise Unsupported("only binary classification is compiled")
        self.tolerance = 0.0 if model.n_jobs in (None, 1) else 1e-12
        self._stages = np.empty((len(model.estimators_), 1), dtype=object)
        for i, estimator in enumerate(model.estimators_):
            self._stages[i, 0] = SimpleNamespace(tree_=_positive_class_tree(estimator.tree_))
        self._count = len(model.estimators_)

    def proba(self, rows: list[list[float]]) -> np.ndarray:
        total = np.zeros((len(rows), 1), dtype=np.float64)
        predict_stages(self._stages, _float32(rows), 1.0, total)
        total /= self._count
        return total[:, 0]


class Boosting:
    """A binary GradientBoostingClassifier. Mirrors `BaseGradientBoosting._raw_predict` (`sklearn/ensemble/
    _gb.py`): the init estimator's raw prediction (`_raw_predict_init`: a constant for the default prior or
    "zero"), then `predict_stages` on the model's own trees with `learning_rate`, then `self._loss.predict_proba`
    as `GradientBoostingClassifier.predict_proba` applies it. Exact, bit for bit: the same calls on the same
    float32 rows, minus the validation."""

    tolerance = 0.0

    def __init__(self, model: GradientBoostingClassifier) -> None:
        if model.n_trees_per_iteration_ != 1:
            raise Unsupported("only binary classification is compiled")
        init = model.init_
        if not (init == "zero" or (type(init) is DummyClassifier and init.strategy == "prior")):
            raise Unsupported(f"the init estimator {init!r} is not compiled; only the default prior or 'zero'")
        self._model = model
        zero_row = np.zeros((1, model.n_features_in_), dtype=np.float32)
        self._init = float(model._raw_predict_init(zero_row)[0, 0])  # the same for every row

    def proba(self, rows: list[list[float]]) -> np.ndarray:
        raw = np.full((len(rows), 1), self._init, dtype=np.float64)
        predict_stages(self._model.estimators_, _float32(rows), self._model.learning_rate, raw)
        return self._model._loss.predict_proba(raw)[:, 1]
