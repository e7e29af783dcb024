"""Publishing a gated model: log the verdict to its MLflow run, register it as `candidate`, export models/ and
record the digest of each exported file on the registered version (the same digests metadata.json lists)."""

from __future__ import annotations

from typing import Any

import mlflow

from conveyor import bundle
from conveyor.checks.result import CheckResult
from conveyor.config import Settings
from conveyor.paths import REPORTS
from conveyor.registry import tracking


def numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def log_to_run(run_id: str, results: list[CheckResult], passed: bool) -> None:
    """Every check's numbers, the verdict as a tag and the reports folder, on the training run."""
    tracking.configure()
    with mlflow.start_run(run_id=run_id):
        for result in results:
            mlflow.log_metrics({f"{result.check}.{k}": v for k, v in numbers(result.metrics).items()})
        mlflow.set_tag("gate", "passed" if passed else "failed")
        mlflow.log_artifacts(str(REPORTS), "reports")


def publish(settings: Settings, info: dict[str, Any], results: list[CheckResult]) -> str:
    """Register the run's model as `candidate`, export models/ for the image and tag the version with the
    exported files' digests; returns the version."""
    version = str(tracking.register(settings, info["run_id"], tracking.CANDIDATE).version)
    evaluation = next(r for r in results if r.check == "evaluate")
    folder = bundle.export(settings, version, info, numbers(evaluation.metrics))
    tracking.tag_files(settings, version, bundle.read_metadata(folder)[bundle.FILES_KEY])
    return version
