"""Time the fairness mitigation inside `conveyor train`, and measure what it buys on the real holdout.

Run from the repository root after `conveyor data fetch`:  python bench/mitigation.py [--repeat 3] [--seeds 4]
Reads params.yaml and data/ only; writes nothing. Prints the median wall and CPU seconds of the plain fit, the
out-of-fold scoring and the threshold search, then the holdout figures of the fairness check (equalized-odds
difference and demographic-parity ratio per sensitive feature, accuracy and F1) with the global threshold and
with the mitigated decision. With --seeds N it also refits the mitigation for N fold seeds under each
constraint, to show how stable the chosen operating point is.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from conveyor.checks import fairness
from conveyor.config import Settings, load_settings
from conveyor.data import frames
from conveyor.decision import Decision
from conveyor.training import mitigation, model

CONSTRAINTS = ("true_positive_rate_parity", "equalized_odds")


def timed(action: Callable[[], Any], repeat: int) -> tuple[Any, float, float]:
    """(last result, median wall seconds, median CPU seconds of all threads)."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, statistics.median(walls), statistics.median(cpus)


def with_mitigation(settings: Settings, **changes: Any) -> Settings:
    mitigation = settings.model.mitigation.model_copy(update=changes)
    return settings.model_copy(update={"model": settings.model.model_copy(update={"mitigation": mitigation})})


def figures(settings: Settings, x: Any, y: np.ndarray, proba: np.ndarray, decision: Decision) -> str:
    metrics = fairness.assess(settings, x, y, proba, decision).metrics
    parts = []
    for name, found in metrics["features"].items():
        before = metrics["mitigation"]["global_threshold"][name]
        parts.append(
            f"{name}: EOD {before['equalized_odds_difference']:.3f} -> {found['equalized_odds_difference']:.3f}, "
            f"DPR {before['demographic_parity_ratio']:.3f} -> {found['demographic_parity_ratio']:.3f}"
        )
    for score in ("accuracy", "f1"):
        values = metrics["mitigation"][score]
        parts.append(f"{score} {values['global_threshold']:.4f} -> {values['mitigated']:.4f}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=0, help="fold seeds to compare the constraints on")
    args = parser.parse_args()
    settings = load_settings()
    train, holdout = frames.split(frames.load_training(settings), settings)
    x, y = frames.features_and_target(train, settings)
    xh, yh = frames.features_and_target(holdout, settings)
    feature = settings.model.mitigation.feature

    pipeline, fit_wall, fit_cpu = timed(lambda: model.build_pipeline(settings).fit(x, y), args.repeat)
    scores, oof_wall, oof_cpu = timed(lambda: mitigation.out_of_fold(settings, x, y), args.repeat)
    thresholds, search_wall, search_cpu = timed(
        lambda: mitigation.group_thresholds(settings, scores, y, x[feature]), args.repeat
    )
    print(f"{len(x)} training rows, {settings.model.mitigation.cv_folds} folds, median of {args.repeat}")
    print(f"fit (the model itself)      {fit_wall:7.2f} s wall {fit_cpu:7.2f} s CPU")
    print(f"out-of-fold scores          {oof_wall:7.2f} s wall {oof_cpu:7.2f} s CPU")
    print(f"ThresholdOptimizer+collapse {search_wall:7.2f} s wall {search_cpu:7.2f} s CPU")

    proba = pipeline.predict_proba(xh)[:, 1]
    decision = Decision(settings.model.decision_threshold, feature, thresholds)
    print(f"thresholds: { {group: round(value, 3) for group, value in thresholds.items()} }")
    print(f"holdout ({len(yh)} rows): {figures(settings, xh, yh, proba, decision)}")

    for constraint in CONSTRAINTS if args.seeds else ():
        for seed in range(args.seeds):
            variant = with_mitigation(settings, constraint=constraint)
            variant = variant.model_copy(update={"split": variant.split.model_copy(update={"seed": seed})})
            found = mitigation.group_thresholds(variant, mitigation.out_of_fold(variant, x, y), y, x[feature])
            row = figures(settings, xh, yh, proba, Decision(decision.threshold, feature, found))
            print(f"{constraint} fold seed {seed}: {row}")


if __name__ == "__main__":
    main()
