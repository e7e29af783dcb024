"""evaluate: holdout metrics and plots, and the champion/challenger comparison on the same holdout.

The curves (ROC, precision-recall, calibration) and the confusion matrix are written twice under reports/plots/:
as data files (CSV) that dvc.yaml declares as top-level `plots`, so `dvc plots diff main` draws this model's curve
and main's on one chart, and as PNGs for a quick look, with the champion's curve beside this one's when a champion
exists (scored on the same holdout rows)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
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


CALIBRATION_BINS = 10
DECIMALS = 4  # plot data rounded: stable, small diffs; a curve moves by far more than 1e-4 between models
CURVE_POINTS = 200  # at most this many points per curve file, evenly spread over its thresholds


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    """At most CURVE_POINTS rows, the first and last always kept."""
    if len(frame) <= CURVE_POINTS:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, CURVE_POINTS).round().astype(int))
    return frame.iloc[keep]


def curves(y: np.ndarray, proba: np.ndarray) -> dict[str, pd.DataFrame]:
    """The ROC, precision-recall and calibration curves of `proba` against the 0/1 labels `y`, as tables."""
    fpr, tpr, roc_thresholds = roc_curve(y, proba)
    precision, recall, pr_thresholds = precision_recall_curve(y, proba)
    observed, predicted = calibration_curve(y, proba, n_bins=CALIBRATION_BINS)
    tables = {
        "roc": pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.minimum(roc_thresholds, 1.0)}),
        # sklearn gives recall falling; the last point (recall 0, precision 1) has no threshold
        "pr": pd.DataFrame(
            {"recall": recall[::-1], "precision": precision[::-1], "threshold": np.r_[pr_thresholds, 1.0][::-1]}
        ),
        "calibration": pd.DataFrame({"predicted": predicted, "observed": observed}),
    }
    return {name: _thin(table).round(DECIMALS) for name, table in tables.items()}


def class_names(settings: Settings) -> tuple[str, str]:
    """(negative, positive) as a reader knows them: params.yaml names only the positive label."""
    positive = settings.data.positive_label
    return f"not {positive}", positive


def write_plot_data(
    y: np.ndarray, proba: np.ndarray, labels: np.ndarray, names: tuple[str, str], folder: Path = PLOTS
) -> list[Path]:
    """The files dvc.yaml's top-level `plots` read: one CSV per curve and the confusion matrix as one row per
    holdout row (actual, predicted: the class names), which DVC's confusion template counts."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in curves(y, proba).items():
        table.to_csv(folder / f"{name}.csv", index=False)
        written.append(folder / f"{name}.csv")
    named = np.asarray(names, dtype=object)
    confusion = pd.DataFrame({"actual": named[y], "predicted": named[labels]})
    confusion.to_csv(folder / "confusion.csv", index=False)
    return [*written, folder / "confusion.csv"]


Curve = Callable[[Axes, pd.DataFrame, str, str], None]


def _line(x: str, y: str, marker: str = "") -> Curve:
    def draw(ax: Axes, table: pd.DataFrame, label: str, colour: str) -> None:
        ax.plot(table[x], table[y], label=label, color=colour, marker=marker, markersize=4)

    return draw


def write_pngs(
    y: np.ndarray,
    proba: np.ndarray,
    labels: np.ndarray,
    names: tuple[str, str],
    champion: tuple[str, np.ndarray] | None = None,
    folder: Path = PLOTS,
) -> list[Path]:
    """The PNGs: titled, axes labelled, the classes by name, a chance line on ROC, and the champion's curve
    (`champion`: its name and probabilities on the same rows) beside this model's."""
    folder.mkdir(parents=True, exist_ok=True)
    ours = curves(y, proba)
    theirs = curves(y, champion[1]) if champion else None
    auc = {"roc": roc_auc_score(y, proba), "pr": average_precision_score(y, proba)}
    champion_auc = (
        {"roc": roc_auc_score(y, champion[1]), "pr": average_precision_score(y, champion[1])} if champion else {}
    )
    specs: dict[str, tuple[str, str, str, Curve, str]] = {
        "roc": ("ROC curve (holdout)", "false positive rate", "true positive rate", _line("fpr", "tpr"), "ROC AUC"),
        "pr": ("Precision-recall curve (holdout)", "recall", "precision", _line("recall", "precision"), "AP"),
        "calibration": (
            "Calibration (holdout)", f"mean predicted P({names[1]})", f"observed share {names[1]}",
            _line("predicted", "observed", marker="o"), "",
        ),
    }  # fmt: skip
    written = []
    for name, (title, xlabel, ylabel, draw, score) in specs.items():
        figure = Figure(figsize=(5, 4.4), dpi=90, layout="constrained")
        ax = figure.subplots()
        if name == "roc":
            ax.plot([0, 1], [0, 1], linestyle="--", color="#8c959f", label="chance")
        elif name == "calibration":
            ax.plot([0, 1], [0, 1], linestyle="--", color="#8c959f", label="perfectly calibrated")
        elif name == "pr":
            ax.axhline(float(np.mean(y)), linestyle="--", color="#8c959f", label="chance (positive rate)")
        suffix = f" ({score} {auc[name]:.3f})" if score else ""
        draw(ax, ours[name], f"this model{suffix}", "#0969da")
        if champion and theirs is not None:
            theirs_suffix = f" ({score} {champion_auc[name]:.3f})" if score else ""
            draw(ax, theirs[name], f"{champion[0]}{theirs_suffix}", "#bf8700")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if name != "pr" else "lower left", fontsize=8)
        figure.savefig(folder / f"{name}.png", metadata={"Software": None})
        written.append(folder / f"{name}.png")
    figure = Figure(figsize=(5, 4.4), dpi=90, layout="constrained")
    ax = figure.subplots()
    ConfusionMatrixDisplay.from_predictions(
        y, labels, display_labels=list(names), ax=ax, colorbar=False, values_format=",d"
    )
    ax.set(title="Confusion matrix (holdout, decision policy)", xlabel="predicted", ylabel="actual")
    figure.savefig(folder / "confusion.png", metadata={"Software": None})
    return [*written, folder / "confusion.png"]


def _champion(settings: Settings, rows: holdout.Holdout) -> tuple[dict[str, Any], np.ndarray] | None:
    """The registry's champion scored on the same holdout `rows`: its scores and its probabilities; None when
    there is no champion."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = tracking.download(settings, tracking.CHAMPION, Path(tmp))
        if folder is None:
            return None
        champion = holdout.score(settings, folder, rows)
        version = tracking.by_alias(settings, tracking.CHAMPION)
        found = {
            "version": str(version.version) if version else None,
            **scores(champion.y, champion.proba, champion.labels),
        }
        return found, champion.proba


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
    scored_champion = _champion(settings, trained)
    overlay = None
    if scored_champion is not None:
        champion, champion_proba = scored_champion
        metrics["champion"] = champion
        judgements.append(_against_champion(metrics["roc_auc"], champion, gate.roc_auc, gate.champion_tolerance))
        overlay = (f"champion v{champion['version']}", champion_proba)

    names = class_names(settings)
    data = write_plot_data(y, proba, labels, names)
    pngs = write_pngs(y, proba, labels, names, overlay)
    result = CheckResult.judged(
        "evaluate",
        judgements,
        metrics=metrics,
        thresholds=gate.model_dump(),
        artifacts=[path.as_posix() for path in [*pngs, *data]],
    )
    result.write()
    return result
