"""gate: read every CheckResult, write reports/gate.json and gate.md; on pass, register and export.

A model becomes a `candidate` in the registry, and models/ exists for the image build, only after every check
passed. On failure nothing is registered and any earlier export is removed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow

from conveyor import export, model, registry, train
from conveyor.checks.result import CheckResult
from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.paths import REPORTS, TRAIN_INFO, TRAINED_MODEL

CHECKS = ("quality", "drift", "evaluate", "fairness", "latency")
MODEL_CHECKS = ("evaluate", "fairness", "latency")  # these judge the trained model, so must postdate it
# What the gate table shows per check: dotted paths into CheckResult.metrics, `*` for every key at that level.
HEADLINES = {
    "quality": ("rows", "label_rate", "duplicate_fraction"),
    "drift": ("window", "drifted_share"),
    "evaluate": ("roc_auc", "pr_auc", "f1", "brier", "champion.roc_auc"),
    "fairness": ("features.*.equalized_odds_difference", "features.*.demographic_parity_ratio"),
    "latency": ("single_p99_ms", "batch_rows_per_s", "load_seconds"),
}


def collect(reports: Path = REPORTS, trained_at: float | None = None) -> list[CheckResult]:
    """Every expected check's result. A missing one counts as failed, and so does a model check older than
    `trained_at` (the training record's mtime): it judged an earlier model."""
    results = []
    for check in CHECKS:
        path = reports / f"{check}.json"
        if not path.exists():
            results.append(CheckResult.from_failures(check, [f"{check} did not run: {path} is missing"]))
        elif check in MODEL_CHECKS and trained_at is not None and path.stat().st_mtime < trained_at:
            stale = f"{check} is stale: {path} predates the trained model; run `conveyor {check}` again"
            results.append(CheckResult.from_failures(check, [stale]))
        else:
            results.append(CheckResult.read(path))
    return results


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def headlines(check: str, metrics: dict[str, Any]) -> list[str]:
    """`name = value` for each headline path found in the metrics."""
    found: list[str] = []

    def walk(node: Any, parts: list[str], trail: list[str]) -> None:
        if not parts:
            shown = f"{node:.4g}" if isinstance(node, float) else str(node)
            found.append(f"{'.'.join(trail)} = {shown}")
            return
        if not isinstance(node, dict):
            return
        keys = sorted(node) if parts[0] == "*" else [parts[0]]
        for key in keys:
            if key in node:
                walk(node[key], parts[1:], [*trail, key])

    for path in HEADLINES.get(check, ()):
        walk(metrics, path.split("."), [])
    return found


def markdown(results: list[CheckResult], passed: bool, version: str | None) -> str:
    """A table fit for a PR comment and $GITHUB_STEP_SUMMARY."""
    verdict = f"passed: registered as version {version} (`candidate`)" if passed else "FAILED: nothing registered"
    lines = [f"### Conveyor gate {verdict}", "", "| check | result | details |", "|---|---|---|"]
    for result in results:
        mark = "✅ pass" if result.passed else "❌ fail"
        details = (
            [f"**{f}**" for f in result.failures]
            + headlines(result.check, result.metrics)
            + [f"⚠️ {w}" for w in result.warnings]
        )
        lines.append(f"| {result.check} | {mark} | {'<br>'.join(d.replace('|', '/') for d in details)} |")
    return "\n".join(lines) + "\n"


def _log_to_run(run_id: str, results: list[CheckResult], passed: bool) -> None:
    registry.configure()
    with mlflow.start_run(run_id=run_id):
        for result in results:
            mlflow.log_metrics({f"{result.check}.{k}": v for k, v in _numbers(result.metrics).items()})
        mlflow.set_tag("gate", "passed" if passed else "failed")
        mlflow.log_artifacts(str(REPORTS), "reports")


def run(settings: Settings) -> bool:
    info = train.read_info()
    if not (TRAINED_MODEL / model.MODEL_FILE).exists():
        raise ConveyorError(f"{TRAINED_MODEL}: the trained model is missing; run `conveyor train` first.")
    results = collect(trained_at=TRAIN_INFO.stat().st_mtime)
    passed = all(r.passed for r in results)
    export.clear()
    _log_to_run(info["run_id"], results, passed)
    version = None
    if passed:
        version = str(registry.register(settings, info["run_id"], registry.CANDIDATE).version)
        evaluation = next(r for r in results if r.check == "evaluate")
        export.export(settings, version, info, _numbers(evaluation.metrics))
    summary = {
        "passed": passed,
        "model_version": version,
        "run_id": info["run_id"],
        "failures": [f"{r.check}: {f}" for r in results for f in r.failures],
        "checks": {r.check: r.passed for r in results},
    }
    (REPORTS / "gate.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    table = markdown(results, passed, version)
    (REPORTS / "gate.md").write_text(table)
    print(table)
    return passed
