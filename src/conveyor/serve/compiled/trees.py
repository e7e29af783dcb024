"""Ensembles of scikit-learn's `Tree` compiled: RandomForest and ExtraTrees, and GradientBoosting.

For one row, every tree's nodes live in plain Python lists (feature, threshold, children, leaf value) over all
trees, and each tree is walked as `Tree.apply` walks it (`sklearn/tree/_tree.pyx`, `_apply_dense`: left when
`X[i, feature] <= threshold`). The trees read float32: the row is rounded as `validate_data(dtype=np.float32)`
rounds it. Batches larger than SMALL_BATCH go to the trees' own Cython code on the encoded float32 matrix.
Missing values never reach the trees (the encoder must impute them), so NaN routing is not needed.
"""

from __future__ import annotations

from array import array

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier
from sklearn.ensemble._gradient_boosting import predict_stages
from sklearn.tree._tree import Tree

from conveyor.serve.compiled.encoder import SMALL_BATCH, Unsupported


class _Nodes:
    """All trees' nodes in flat Python lists; a leaf's feature is -1. `leaves(row)` yields each tree's leaf
    value, in tree order."""

    def __init__(self, trees: list[Tree], leaf_values: list[np.ndarray]) -> None:
        feature: list[int] = []
        threshold: list[float] = []
        left: list[int] = []
        right: list[int] = []
        value: list[float] = []
        self.roots: list[int] = []
        for tree, values in zip(trees, leaf_values, strict=True):
            start = len(feature)
            self.roots.append(start)
            is_leaf = tree.children_left == -1
            feature += np.where(is_leaf, -1, tree.feature).tolist()
            threshold += tree.threshold.tolist()
            left += np.where(is_leaf, 0, tree.children_left + start).tolist()
            right += np.where(is_leaf, 0, tree.children_right + start).tolist()
            value += values.tolist()
        self.feature, self.threshold, self.left, self.right, self.value = feature, threshold, left, right, value

    def leaves(self, row: list[float]) -> list[float]:
        x = array("f", row).tolist()  # float32, as the trees read it
        feature, threshold, left, right, value = self.feature, self.threshold, self.left, self.right, self.value
        out = []
        for node in self.roots:
            f = feature[node]
            while f >= 0:
                node = left[node] if x[f] <= threshold[node] else right[node]
                f = feature[node]
            out.append(value[node])
        return out


class Forest:
    """A binary RandomForestClassifier or ExtraTreesClassifier. Mirrors `ForestClassifier.predict_proba`
    (`sklearn/ensemble/_forest.py`): each tree's class fractions (`tree_.value`, already normalised per node
    since scikit-learn 1.4; `DecisionTreeClassifier.predict_proba` returns them as they are) are added into a
    zero array in tree order (`_accumulate_prediction`), then divided by the number of trees.

    Exact, bit for bit, with n_jobs 1 (or None): the same additions in the same order. With more jobs
    scikit-learn adds the trees in whatever order its threads finish, so only 1e-12 is promised."""

    def __init__(self, model: RandomForestClassifier | ExtraTreesClassifier) -> None:
        if model.n_outputs_ != 1 or model.n_classes_ != 2:
            raise Unsupported("only binary classification is compiled")
        self.tolerance = 0.0 if model.n_jobs in (None, 1) else 1e-12
        self._trees = [e.tree_ for e in model.estimators_]
        self._nodes = _Nodes(self._trees, [t.value[:, 0, 1] for t in self._trees])
        self._count = len(self._trees)

    def proba(self, rows: list[list[float]]) -> np.ndarray:
        if len(rows) <= SMALL_BATCH:
            out = []
            for row in rows:
                total = 0.0
                for value in self._nodes.leaves(row):
                    total += value
                out.append(total / self._count)
            return np.array(out, dtype=np.float64)
        x = np.array(rows, dtype=np.float32).reshape(len(rows), -1)
        total = np.zeros(len(rows), dtype=np.float64)
        for tree in self._trees:
            total += tree.predict(x)[:, 1]  # (rows, classes) for one output
        total /= self._count
        return total


class Boosting:
    """A binary GradientBoostingClassifier. Mirrors `BaseGradientBoosting._raw_predict` (`sklearn/ensemble/
    _gb.py`): the init estimator's raw prediction (`_raw_predict_init`: a constant for the default prior or
    "zero"), then `predict_stages` (`_gradient_boosting.pyx`) adds `learning_rate * leaf value` per tree in
    stage order, then `GradientBoostingClassifier.predict_proba` applies `self._loss.predict_proba`, used here
    as it is. Exact, bit for bit: the same multiplications and additions in the same order."""

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
        self._rate = float(model.learning_rate)
        trees = [e.tree_ for e in model.estimators_[:, 0]]
        self._nodes = _Nodes(trees, [t.value[:, 0, 0] for t in trees])

    def proba(self, rows: list[list[float]]) -> np.ndarray:
        if len(rows) <= SMALL_BATCH:
            raw = []
            for row in rows:
                total = self._init
                for value in self._nodes.leaves(row):
                    total += self._rate * value
                raw.append(total)
            raws = np.array(raw, dtype=np.float64).reshape(-1, 1)
        else:
            raws = np.full((len(rows), 1), self._init, dtype=np.float64)
            x = np.array(rows, dtype=np.float32).reshape(len(rows), -1)
            predict_stages(self._model.estimators_, x, self._model.learning_rate, raws)
        return self._model._loss.predict_proba(raws)[:, 1]
