"""evaluate: holdout metrics and plots, and the champion/challenger comparison on the same holdout."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import CalibrationDisplay
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from conveyor.checks import holdout
from conveyor.checks.result import CheckResult
from conveyor.config import Judgement, Settings, Threshold, human
from conveyor.paths import REPORTS
from conveyor.registry import tracking

PLOTS = REPORTS / "plots"


def scores(y: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(y, proba)),
        "pr_auc": float(average_precision_score(y, proba)),
        "f1": float(f1_score(y, labels, zero_division=0)),
        "precision": float(precision_score(y, labels, zero_division=0)),
        "recall": float(recall_score(y, labels, zero_division=0)),
        "accuracy": float(accuracy_score(y, labels)),
        "brier": float(brier_score_loss(y, proba)),
    }


def _plots(y: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> list[str]:
    PLOTS.mkdir(parents=True, exist_ok=True)
    drawings = {
        "roc.png": lambda ax: RocCurveDisplay.from_predictions(y, proba, ax=ax),
        "pr.png": lambda ax: PrecisionRecallDisplay.from_predictions(y, proba, ax=ax),
        "calibration.png": lambda ax: CalibrationDisplay.from_predictions(y, proba, n_bins=10, ax=ax),
        "confusion.png": lambda ax: ConfusionMatrixDisplay.from_predictions(y, labels, ax=ax, colorbar=False),
    }
    written = []
    for name, draw in drawings.items():
        fig, ax = plt.subplots(figsize=(4.5, 4), dpi=90)
        draw(ax)
        fig.tight_layout()
        fig.savefig(PLOTS / name, metadata={"Software": None})
        plt.close(fig)
        written.append(str(PLOTS / name))
    return written


def _champion_scores(settings: Settings, rows: holdout.Holdout) -> dict[str, Any] | None:
    """Score the registry's champion on the same holdout `rows`; None when there is no champion."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = tracking.download(settings, tracking.CHAMPION, Path(tmp))
        if folder is None:
            return None
        champion = holdout.score(settings, folder, rows)
        version = tracking.by_alias(settings, tracking.CHAMPION)
        return {
            "version": str(version.version) if version else None,
            **scores(champion.y, champion.proba, champion.labels),
        }


def _against_champion(roc_auc: float, champion: dict[str, Any], own: Threshold, tolerance: float) -> Judgement:
    """The challenger's ROC AUC against the champion's on the same holdout, less `gates.evaluate.champion_tolerance`:
    a limit known only on the day, judged like every other."""
    floor = Threshold(
        min=champion["roc_auc"] - tolerance,
        label=f"ROC AUC against champion v{champion['version']}",
        digits=max(own.digits, 4),
    )
    judgement = floor.judge("roc_auc_vs_champion", roc_auc)
    if judgement.failure is None:
        return judgement
    why = f" (its {judgement.shown(champion['roc_auc'])} - tolerance {human(tolerance, 4)})"
    return replace(judgement, failure=judgement.failure + why)


def run(settings: Settings) -> CheckResult:
    gate = settings.gates.evaluate
    trained = holdout.score(settings)
    y, proba, labels = trained.y, trained.proba, trained.labels
    metrics: dict[str, Any] = scores(y, proba, labels) | {"holdout_rows": len(y)}

    judgements = [threshold.judge(name, metrics[name]) for name, threshold in gate.thresholds().items()]
    champion = _champion_scores(settings, trained)
    if champion is not None:
        metrics["champion"] = champion
        judgements.append(_against_champion(metrics["roc_auc"], champion, gate.roc_auc, gate.champion_tolerance))

    result = CheckResult.judged(
        "evaluate",
        judgements,
        metrics=metrics,
        thresholds=gate.model_dump(),
        artifacts=_plots(y, proba, labels),
    )
    result.write()
    return result
