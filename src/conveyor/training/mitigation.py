"""Fairness mitigation: per-group decision thresholds from fairlearn's ThresholdOptimizer, made deterministic.

ThresholdOptimizer (Hardt et al., post-processing) gives each group of one sensitive feature a randomized
classifier: a mix of two thresholds and, for groups whose ROC curve lies above the others, a coin flip towards
a constant, so that every group reaches the same operating point (false and true positive rate, for equalized
odds). Serving must be deterministic and cheap, so each group's randomized classifier is collapsed to the one
threshold whose operating point on that group's rows is nearest to it, nearest meaning the larger of the FPR
and TPR gaps: the quantity the equalized-odds difference measures.

Rows are put in an order fixed by their content first (`canonical`), so that shuffling the training file
changes neither the folds nor the thresholds. The optimizer sees out-of-fold probabilities of the training split (each row scored by a model that did not
train on it, as the final model scores new rows); the holdout is never used, so the fairness check measures
the thresholds on rows that neither the model nor the mitigation saw. Groups with fewer than
`min_group_rows` training rows (or a single class) are too small to place a threshold on; they keep the global
threshold, and the fairness check reports them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils import Bunch

from conveyor.config import Settings
from conveyor.decision import Decision
from conveyor.errors import ConveyorError
from conveyor.training import model


class _Scores(ClassifierMixin, BaseEstimator):
    """A fitted 'classifier' whose probability is its single input column: lets ThresholdOptimizer work on
    precomputed out-of-fold scores with prefit=True."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Scores:
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        scores = np.asarray(x, dtype=np.float64)[:, 0]
        return np.column_stack([1.0 - scores, scores])

    def __sklearn_is_fitted__(self) -> bool:
        return True


def decision(settings: Settings, x: pd.DataFrame, y: np.ndarray) -> Decision:
    """The decision policy for a model trained on (x, y), per `model.mitigation`."""
    config = settings.model.mitigation
    plain = Decision(threshold=settings.model.decision_threshold)
    if config.method == "none":
        return plain
    if config.feature not in settings.data.sensitive_features:
        raise ConveyorError(
            f"model.mitigation.feature = {config.feature!r} is not one of data.sensitive_features "
            f"{settings.data.sensitive_features}."
        )
    x, y = canonical(x, y)
    scores = out_of_fold(settings, x, y)
    thresholds = group_thresholds(settings, scores, y, x[config.feature])
    if not thresholds:
        return plain
    return Decision(threshold=plain.threshold, group_feature=config.feature, group_thresholds=thresholds)


def canonical(x: pd.DataFrame, y: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows in an order fixed by their content (a hash of features and label), whatever order the file had:
    the folds, the fit and so the decision policy are the same for the same rows shuffled. Identical rows tie,
    and their order does not matter."""
    keys = pd.util.hash_pandas_object(x.assign(__label__=y), index=False).to_numpy()
    order = np.argsort(keys, kind="stable")
    return x.iloc[order].reset_index(drop=True), np.asarray(y)[order]


def out_of_fold(settings: Settings, x: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    """P(positive) for every training row from a model fitted on the other folds."""
    folds = StratifiedKFold(settings.model.mitigation.cv_folds, shuffle=True, random_state=settings.split.seed)
    try:
        proba = cross_val_predict(model.build_pipeline(settings), x, y, cv=folds, method="predict_proba")
    except ValueError as exc:
        raise ConveyorError(f"model.mitigation.cv_folds = {folds.n_splits} does not fit the data: {exc}") from None
    return proba[:, 1]


def group_thresholds(settings: Settings, scores: np.ndarray, y: np.ndarray, groups: pd.Series) -> dict[str, float]:
    """One deterministic threshold per group large enough to fit; {} when fewer than two groups are."""
    config = settings.model.mitigation
    groups = groups.astype(object).reset_index(drop=True)
    frame = pd.DataFrame({"group": groups, "y": y}).dropna()
    stats = frame.groupby("group")["y"].agg(["size", "min", "max"])
    fitted = stats.index[(stats["size"] >= config.min_group_rows) & (stats["min"] != stats["max"])]
    if len(fitted) < 2:
        return {}
    rows = groups.isin(fitted).to_numpy()
    optimizer = ThresholdOptimizer(
        estimator=_Scores(),
        constraints=config.constraint,
        objective=config.objective,
        predict_method="predict_proba",
        prefit=True,
    ).fit(scores[rows, None], y[rows], sensitive_features=groups[rows].to_numpy())
    chosen = {}
    for group, interpolation in optimizer.interpolated_thresholder_.interpolation_dict.items():
        mine = (groups == group).to_numpy()
        chosen[str(group)] = collapse(interpolation, scores[mine], y[mine])
    return chosen


def collapse(interpolation: Bunch, scores: np.ndarray, y: np.ndarray) -> float:
    """The threshold (`score >= t`) whose (FPR, TPR) on these rows is nearest, by the larger of the two gaps,
    to the expected (FPR, TPR) of fairlearn's randomized classifier for the group."""
    positive = _randomized_positive_probability(interpolation, scores)
    target_fpr, target_tpr = positive[y == 0].mean(), positive[y == 1].mean()
    thresholds, fpr, tpr = roc_points(scores, y)
    gap = np.maximum(np.abs(fpr - target_fpr), np.abs(tpr - target_tpr))
    return float(thresholds[np.argmin(gap)])


def _randomized_positive_probability(interpolation: Bunch, scores: np.ndarray) -> np.ndarray:
    """P(label 1) per row under fairlearn's InterpolatedThresholder, as its interpolation_dict documents."""
    chosen = interpolation.p0 * interpolation.operation0(scores)
    probability = chosen + interpolation.p1 * interpolation.operation1(scores)
    if "p_ignore" in interpolation:
        ignored = interpolation.p_ignore
        probability = ignored * interpolation.prediction_constant + (1 - ignored) * probability
    return probability


def roc_points(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, FPR, TPR) of `score >= t` for every distinct score t, ascending."""
    values, index = np.unique(scores, return_inverse=True)
    positives = np.bincount(index, weights=y, minlength=len(values))
    negatives = np.bincount(index, weights=1 - y, minlength=len(values))
    at_or_above = np.cumsum(positives[::-1])[::-1], np.cumsum(negatives[::-1])[::-1]
    return values, at_or_above[1] / negatives.sum(), at_or_above[0] / positives.sum()
