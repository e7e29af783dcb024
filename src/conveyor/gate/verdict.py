"""The gate's verdict: read every CheckResult, write reports/gate.json and gate.md; on pass, publish.

A model becomes a `candidate` in the registry, and models/ exists for the image build, only after every check
passed. On failure nothing is registered and any earlier export is removed."""

from __future__ import annotations

import json
from pathlib import Path

from conveyor import bundle, provenance
from conveyor.checks import CHECKS, MODEL_CHECKS
from conveyor.checks.result import CheckResult
from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.gate import publish
from conveyor.gate.report import markdown
from conveyor.paths import REPORTS, TRAIN_INFO, TRAINED_MODEL


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


def run(settings: Settings) -> bool:
    info = provenance.read_train_info()
    if not (TRAINED_MODEL / bundle.MODEL_FILE).exists():
        raise ConveyorError(f"{TRAINED_MODEL}: the trained model is missing; run `conveyor train` first.")
    results = collect(trained_at=TRAIN_INFO.stat().st_mtime)
    passed = all(r.passed for r in results)
    bundle.clear()
    publish.log_to_run(info["run_id"], results, passed)
    version = publish.publish(settings, info, results) if passed else None
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
