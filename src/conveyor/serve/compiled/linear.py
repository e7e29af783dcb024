"""Binary linear classifiers with a logistic link compiled: LogisticRegression, LogisticRegressionCV and
SGDClassifier(loss="log_loss").

Mirrors `LinearClassifierMixin.decision_function` (`sklearn/linear_model/_base.py`: `safe_sparse_dot(X, coef_.T)
+ intercept_`) and `_predict_proba_lr` (`scipy.special.expit` of it, through `utils._array_api._expit`).
For one row the dot product is a Python sum over the row's nonzero entries in column order, which is how
scipy's CSR product (`csr_matvecs`) adds when the preprocessing output is sparse, as the one-hot Pipeline's is;
batches use the same `safe_sparse_dot` on the same kind of matrix. Within 1e-12, not bit for bit: on a dense
preprocessing output numpy's BLAS adds in its own blocked order (and may fuse multiply-adds), which no Python
sum reproduces. The link is the same `expit` ufunc on float64 arrays.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, SGDClassifier
from sklearn.utils.extmath import safe_sparse_dot

from conveyor.serve.compiled.encoder import SMALL_BATCH, Unsupported

TYPES = (LogisticRegression, LogisticRegressionCV, SGDClassifier)


class Linear:
    tolerance = 1e-12

    def __init__(self, model: LogisticRegression | LogisticRegressionCV | SGDClassifier, sparse_input: bool) -> None:
        if type(model) is SGDClassifier and model.loss != "log_loss":
            raise Unsupported(f"SGDClassifier(loss={model.loss!r}) is not compiled; only log_loss")
        if model.coef_.shape[0] != 1:
            raise Unsupported("only binary classification is compiled")
        self._coef = model.coef_.ravel().tolist()
        self._intercept = float(model.intercept_[0])
        self._coef_t = model.coef_.T
        self._intercepts = model.intercept_
        self._sparse = sparse_input

    def proba(self, rows: list[list[float]]) -> np.ndarray:
        if len(rows) <= SMALL_BATCH:
            scores = []
            for row in rows:
                total = 0.0
                for x, w in zip(row, self._coef, strict=True):
                    if x:  # a CSR matrix holds no zeros
                        total += x * w
                scores.append(total + self._intercept)
            return expit(np.array(scores, dtype=np.float64))
        x = np.array(rows, dtype=np.float64).reshape(len(rows), -1)
        matrix = sparse.csr_matrix(x) if self._sparse else x
        return expit((safe_sparse_dot(matrix, self._coef_t, dense_output=True) + self._intercepts).ravel())
