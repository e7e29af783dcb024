"""A window judged: live drift (the pipeline's drift check, same Evidently configuration), the prediction-score
shift, live performance and per-group fairness on the labelled rows, and the shadow challenger against the primary.

Each part is judged only with enough rows (params.yaml monitor.min_records, min_labelled); otherwise it is reported
as not judged, with the reason, and decides nothing. A window where nothing could be judged has `judged` false:
it neither passes nor fails the consecutive-window count (conveyor.monitor.state)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import brier_score_loss, precision_score, recall_score, roc_auc_score

from conveyor import bundle
from conveyor.checks import drift, fairness, holdout
from conveyor.checks.result import CheckResult
from conveyor.config import Judgement, Settings
from conveyor.data import frames
from conveyor.monitor.window import Window, stamp
from conveyor.predictionlog import PRIMARY, SHADOW

CHECK = "monitor"
EPSILON = 1e-4  # a PSI bin's share is at least this, so an empty bin does not make the index infinite
LIVE_ROWS = "labelled live"


@dataclass(frozen=True)
class Reference:
    """What live traffic is compared with: the training split's features and, when a model bundle is given, the
    holdout's scores under that bundle (the score distribution the model gave on data like its training data)."""

    features: pd.DataFrame
    scores: np.ndarray | None = None
    version: str | None = None


@dataclass
class Verdict:
    """The judgements by part (drift, score_shift, performance, fairness), the metrics and the notes."""

    judgements: dict[str, list[Judgement]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def failing(self) -> list[str]:
        """The parts with a broken threshold, in the order they were judged."""
        return [part for part, judged in self.judgements.items() if any(j.failure for j in judged)]


def reference(settings: Settings, model: Path | None) -> Reference:
    """The training split of the training pool (what the model learnt from), and the holdout scored by `model`."""
    train, rest = frames.split(frames.load_training(settings), settings)
    features = train[list(settings.data.features)]
    if model is None:
        return Reference(features)
    scored = holdout.score(settings, model, holdout.Holdout(*frames.features_and_target(rest, settings)))
    metadata = model / bundle.METADATA_FILE
    version = str(bundle.read_metadata(model)["version"]) if metadata.is_file() else None
    return Reference(features, scored.proba, version)


def assess(settings: Settings, window: Window, ref: Reference) -> CheckResult:
    """The window's CheckResult (not written)."""
    config = settings.monitor
    verdict = Verdict()
    primary, shadow = window.primary, window.shadow
    labelled = window.labelled(PRIMARY)
    verdict.metrics |= {
        "window": {"since": stamp(window.since), "until": stamp(window.until)},
        "records": {PRIMARY: len(primary), SHADOW: len(shadow)},
        "labelled": {PRIMARY: len(labelled), SHADOW: len(window.labelled(SHADOW))},
        "versions": {PRIMARY: sorted(set(primary["version"])), SHADOW: sorted(set(shadow["version"]))},
    }
    if len(primary) >= config.min_records:
        _drift(settings, primary, ref, verdict)
        _score_shift(settings, primary, ref, verdict)
    else:
        reason = f"{len(primary)} primary predictions in the window, below monitor.min_records {config.min_records}"
        verdict.metrics["drift"] = {"judged": False, "reason": reason}
        verdict.metrics["score_shift"] = {"judged": False, "reason": reason}
        verdict.warnings.append(f"drift and score shift not judged: {reason}.")
    if len(labelled) >= config.min_labelled:
        _performance(settings, labelled, verdict)
        _fairness(settings, labelled, verdict)
    else:
        reason = f"{len(labelled)} labelled primary predictions, below monitor.min_labelled {config.min_labelled}"
        verdict.metrics["performance"] = {PRIMARY: {"judged": False, "reason": reason}}
        verdict.metrics["fairness"] = {"judged": False, "reason": reason}
        verdict.warnings.append(f"performance and fairness not judged: {reason}.")
    _challenger(settings, window, verdict)

    judged = bool(verdict.judgements)
    verdict.metrics["judged"] = judged
    verdict.metrics["failing"] = verdict.failing()
    if not judged:
        verdict.warnings.insert(0, f"not judged: too few records in the window {window.describe()}.")
    policy_warns = settings.gates.drift.policy == "warn"
    judgements = [j for part in verdict.judgements.values() for j in part]
    failures = [
        j.failure
        for part, js in verdict.judgements.items()
        for j in js
        if j.failure and not (policy_warns and part == "drift")
    ]
    if policy_warns:
        verdict.warnings += [j.failure for j in verdict.judgements.get("drift", []) if j.failure]
        verdict.metrics["failing"] = [p for p in verdict.failing() if p != "drift"]
    return CheckResult(
        check=CHECK,
        passed=not failures,
        metrics=verdict.metrics,
        thresholds=_thresholds(settings),
        failures=failures,
        warnings=verdict.warnings,
        judgements=judgements,
    )


def _present(settings: Settings, frame: pd.DataFrame) -> tuple[Settings, list[str]]:
    """The settings restricted to the features the log carries (a deployment may leave sensitive fields out of
    it), and the names left out."""
    kept = {name: spec for name, spec in settings.data.features.items() if frame[name].notna().any()}
    missing = [name for name in settings.data.features if name not in kept]
    if not missing:
        return settings, []
    data = settings.data.model_copy(update={"features": kept})
    return settings.model_copy(update={"data": data}), missing


def _drift(settings: Settings, primary: pd.DataFrame, ref: Reference, verdict: Verdict) -> None:
    """The pipeline's drift comparison (conveyor.checks.drift.measure) on the primary's features."""
    present, missing = _present(settings, primary)
    if not present.data.features:
        verdict.metrics["drift"] = {"judged": False, "reason": "the log carries no feature values"}
        verdict.warnings.append("drift not judged: the log carries no feature values.")
        return
    if missing:
        verdict.warnings.append(f"drift leaves out {', '.join(missing)}: no value in the log's window.")
    found = drift.measure(present, ref.features, primary, "live window")
    verdict.judgements["drift"] = found.judgements
    verdict.metrics["drift"] = {
        "judged": True,
        "detected": any(j.failure for j in found.judgements),
        "reference_rows": len(ref.features),
        "drifted_share": found.share,
        "drifted_count": found.count,
        "drifted": found.drifted,
        "columns": found.columns,
        "left_out": missing,
    }


def psi(reference: np.ndarray, live: np.ndarray, bins: int) -> float:
    """Population stability index of `live` against `reference`, over `bins` quantile bins of the reference:
    sum((live share - reference share) * ln(live share / reference share))."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(reference, edges)[0] / len(reference)
    actual = np.histogram(live, edges)[0] / len(live)
    expected, actual = np.clip(expected, EPSILON, None), np.clip(actual, EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _score_shift(settings: Settings, primary: pd.DataFrame, ref: Reference, verdict: Verdict) -> None:
    if ref.scores is None:
        reason = "no model bundle given (--model) to score the reference holdout"
        verdict.metrics["score_shift"] = {"judged": False, "reason": reason}
        verdict.warnings.append(f"score shift not judged: {reason}.")
        return
    value = psi(ref.scores, primary["probability"].to_numpy(), settings.monitor.score_bins)
    verdict.judgements["score_shift"] = [settings.monitor.score_shift.judge("score_shift", value)]
    verdict.metrics["score_shift"] = {
        "judged": True,
        "psi": value,
        "reference_rows": len(ref.scores),
        "reference_version": ref.version,
        "live_mean": float(primary["probability"].mean()),
        "reference_mean": float(np.mean(ref.scores)),
    }
    live = set(primary["version"])
    if ref.version is not None and live != {ref.version}:
        verdict.warnings.append(
            f"the reference scores come from model version {ref.version}, the window's primary served "
            f"{', '.join(sorted(live))}."
        )


def calibration_error(y: np.ndarray, proba: np.ndarray, bins: int) -> float:
    """Expected calibration error: over equal-width probability bins, the gap between mean score and positive rate,
    weighted by the bin's share of rows."""
    index = np.minimum((proba * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(index):
        rows = index == b
        total += rows.mean() * abs(proba[rows].mean() - y[rows].mean())
    return float(total)


def scores(frame: pd.DataFrame, bins: int) -> dict[str, Any]:
    """Live performance of one role on its labelled rows; ROC AUC is None with a single class of labels."""
    y = frame["actual"].to_numpy(dtype=int)
    proba = frame["probability"].to_numpy(dtype=float)
    labels = frame["predicted"].to_numpy(dtype=int)
    both = len(np.unique(y)) == 2
    return {
        "judged": True,
        "rows": len(y),
        "positives": int(y.sum()),
        "roc_auc": float(roc_auc_score(y, proba)) if both else None,
        "precision": float(precision_score(y, labels, zero_division=0)),
        "recall": float(recall_score(y, labels, zero_division=0)),
        "calibration_error": calibration_error(y, proba, bins),
        "brier": float(brier_score_loss(y, proba)),
    }


def _performance(settings: Settings, labelled: pd.DataFrame, verdict: Verdict) -> None:
    """ROC AUC against the gate's own floor (gates.evaluate.roc_auc), precision, recall and calibration against
    monitor's thresholds."""
    found = scores(labelled, settings.monitor.calibration_bins)
    verdict.metrics["performance"] = {PRIMARY: found}
    limits = {
        "roc_auc": settings.gates.evaluate.roc_auc,
        "precision": settings.monitor.precision,
        "recall": settings.monitor.recall,
        "calibration_error": settings.monitor.calibration_error,
    }
    verdict.judgements["performance"] = [
        limit.judge(name, found[name]) for name, limit in limits.items() if found[name] is not None
    ]
    if found["roc_auc"] is None:
        verdict.warnings.append("live ROC AUC not judged: the labelled rows hold a single class.")


def _fairness(settings: Settings, labelled: pd.DataFrame, verdict: Verdict) -> None:
    """fairlearn's group metrics (conveyor.checks.fairness.measure) on the sensitive features the log carries."""
    gate = settings.gates.fairness
    y = labelled["actual"].to_numpy(dtype=int)
    predicted = labelled["predicted"].to_numpy(dtype=int)
    features, judged = {}, []
    for name in settings.data.sensitive_features:
        if not labelled[name].notna().any():
            verdict.warnings.append(f"fairness by {name} not judged: the log carries no {name} values.")
            continue
        groups = labelled[name].astype(object).fillna(fairness.MISSING).rename(name).reset_index(drop=True)
        features[name] = fairness.measure(y, predicted, groups, gate)
        judgements, notes = fairness.judge(name, features[name], gate, rows=LIVE_ROWS)
        judged += judgements
        verdict.warnings += notes
    verdict.metrics["fairness"] = {"judged": bool(features), "features": features}
    if not features:
        verdict.metrics["fairness"]["reason"] = "the log carries no sensitive feature values"
    else:
        verdict.judgements["fairness"] = judged


def _challenger(settings: Settings, window: Window, verdict: Verdict) -> None:
    """The shadow on the requests the primary answered that have a label: its metrics, and a paired bootstrap
    interval on ROC AUC shadow minus primary (the same resampled requests for both, a fixed seed)."""
    if window.shadow.empty:
        return
    pairs = window.labelled(PRIMARY).merge(
        window.labelled(SHADOW)[["id", "probability", "predicted"]], on="id", suffixes=("", "_shadow")
    )
    config = settings.monitor
    if len(pairs) < config.min_labelled:
        reason = f"{len(pairs)} labelled requests both answered, below monitor.min_labelled {config.min_labelled}"
        verdict.metrics["challenger"] = {"judged": False, "reason": reason}
        verdict.warnings.append(f"champion vs challenger not compared: {reason}.")
        return
    shadow = pairs.assign(probability=pairs["probability_shadow"], predicted=pairs["predicted_shadow"])
    verdict.metrics["performance"][SHADOW] = scores(shadow, config.calibration_bins)
    low, high, difference = bootstrap_difference(
        pairs["actual"].to_numpy(dtype=int),
        pairs["probability"].to_numpy(dtype=float),
        pairs["probability_shadow"].to_numpy(dtype=float),
        config.bootstrap.resamples,
        config.bootstrap.confidence,
        config.bootstrap.seed,
    )
    verdict.metrics["challenger"] = {
        "judged": difference is not None,
        "pairs": len(pairs),
        "roc_auc_difference": difference,
        "low": low,
        "high": high,
        **config.bootstrap.model_dump(),
    }


def auc(y: np.ndarray, proba: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged: what roc_auc_score gives, fast enough to
    run a thousand times per window."""
    positives = y == 1
    n1, n0 = int(positives.sum()), int((~positives).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = rankdata(proba)
    return float((ranks[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def bootstrap_difference(
    y: np.ndarray, primary: np.ndarray, shadow: np.ndarray, resamples: int, confidence: float, seed: int
) -> tuple[float | None, float | None, float | None]:
    """(low, high, point) of ROC AUC shadow minus primary: percentile interval over `resamples` paired resamples of
    the requests; resamples with a single class are skipped. None when the labels hold one class."""
    point = auc(y, shadow) - auc(y, primary)
    if math.isnan(point):
        return None, None, None
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        found = auc(y[rows], shadow[rows]) - auc(y[rows], primary[rows])
        if not math.isnan(found):
            differences.append(found)
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    return float(low), float(high), float(point)


def _thresholds(settings: Settings) -> dict[str, Any]:
    config = settings.monitor
    return {
        "min_records": config.min_records,
        "min_labelled": config.min_labelled,
        "drift": settings.gates.drift.model_dump(),
        "roc_auc": settings.gates.evaluate.roc_auc.model_dump(),
        "precision": config.precision.model_dump(),
        "recall": config.recall.model_dump(),
        "calibration_error": config.calibration_error.model_dump(),
        "score_shift": config.score_shift.model_dump(),
        "fairness": settings.gates.fairness.model_dump(),
    }
