"""The gate's verdict: read every CheckResult, write reports/gate.json and gate.md; on pass, publish.

A model becomes a `candidate` in the registry, and models/ exists for the image build, only after every check
passed. On failure nothing is registered and any earlier export is removed.

`explain()` says what the current run came to without judging anything: the gate's verdict when the gate judged
this run, otherwise the stage that stopped it and why. Every stage removes the verdict when it starts, so a
verdict left over from an earlier run never stands for this one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from conveyor import bundle, provenance
from conveyor.checks import BLOCKING, CHECKS, MODEL_CHECKS, REMEASURED
from conveyor.checks.result import CheckResult
from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.gate import index, publish
from conveyor.gate.report import Table, markdown, text
from conveyor.paths import GATE_INDEX, GATE_SUMMARY, GATE_TABLE, LATENCY_VERDICT, REPORTS, TRAIN_INFO, TRAINED_MODEL

PHASES = ("reading the checks' reports", "logging to the MLflow run", "registering the candidate", "writing reports")


def collect(reports: Path = REPORTS, trained_at: float | None = None) -> list[CheckResult]:
    """Every expected check's result. A missing one counts as failed, and so does a model check older than
    `trained_at` (the training record's mtime): it judged an earlier model."""
    return [_result(reports, check, trained_at) for check in CHECKS]


def _result(reports: Path, check: str, trained_at: float | None) -> CheckResult:
    path = reports / f"{check}.json"
    if not path.exists():
        return CheckResult.from_failures(check, [f"{check} did not run: {path} is missing"])
    if check in MODEL_CHECKS and trained_at is not None and path.stat().st_mtime < trained_at:
        stale = f"{check} is stale: {path} predates the trained model; run `conveyor {check}` again"
        return CheckResult.from_failures(check, [stale])
    return CheckResult.read(path)


def run(settings: Settings, advance: Callable[[str], None] = lambda phase: None) -> bool:
    """Judge this run; `advance(phase)` is told each of PHASES as it starts."""
    for previous in (GATE_SUMMARY, GATE_TABLE, GATE_INDEX):  # a gate that fails half-way leaves no verdict standing
        previous.unlink(missing_ok=True)
    info = provenance.read_train_info()
    if not (TRAINED_MODEL / bundle.MODEL_FILE).exists():
        raise ConveyorError(f"{TRAINED_MODEL}: the trained model is missing; run `conveyor train` first.")
    advance(PHASES[0])
    results = collect(trained_at=TRAIN_INFO.stat().st_mtime)
    passed = all(r.passed for r in results)
    bundle.clear()
    advance(PHASES[1])
    publish.log_to_run(info["run_id"], results, passed)
    advance(PHASES[2])
    version = publish.publish(settings, info, results) if passed else None
    advance(PHASES[3])
    summary = {
        "passed": passed,
        "model_version": version,
        "run_id": info["run_id"],
        "failures": [f"{r.check}: {f}" for r in results for f in r.failures],
        "checks": {r.check: r.passed for r in results},
    }
    table = Table(results, passed, version)
    GATE_TABLE.write_text(markdown(table))
    index.write(table)
    GATE_SUMMARY.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(text(table), end="")
    return passed


def _current_verdict(reports: Path, train_info: Path) -> bool:
    """gate.json and gate.md exist and are newer than every report and the training record they judged (for a
    re-measured check, its verdict file: a new measurement that agrees does not make the verdict stale)."""
    summary, table = reports / GATE_SUMMARY.name, reports / GATE_TABLE.name
    if not (summary.is_file() and table.is_file()):
        return False
    inputs = [reports / f"{check}.json" for check in CHECKS if check not in REMEASURED] + [train_info]
    inputs.append(reports / LATENCY_VERDICT.name)
    return all(summary.stat().st_mtime >= p.stat().st_mtime for p in inputs if p.exists())


def stopped(reports: Path = REPORTS, train_info: Path = TRAIN_INFO) -> tuple[str, str, list[CheckResult]]:
    """(stage, why, results) for a run the gate did not judge: the first blocking check that failed, else the
    training step when its record is missing, else the first check with no report, else the gate itself. A report
    older than the stopping check's is from an earlier run and shows as not reached."""
    trained = train_info.stat().st_mtime if train_info.exists() else None
    results: list[CheckResult] = []
    stage: tuple[str, str] | None = None
    stop_time = 0.0
    for check in CHECKS:
        path = reports / f"{check}.json"
        if stage is not None and (not path.exists() or path.stat().st_mtime < stop_time):
            results.append(CheckResult.from_failures(check, [f"{check} did not run: the run stopped at {stage[0]}"]))
            continue
        if check in MODEL_CHECKS and trained is None:
            stage = stage or ("train", f"{train_info} is missing: training did not finish")
            results.append(CheckResult.from_failures(check, [f"{check} did not run: there is no trained model"]))
            continue
        result = _result(reports, check, trained)
        results.append(result)
        if stage is None and check in BLOCKING and not result.passed:
            # A blocking check with no report at all never finished: nothing after it is from this run.
            when = path.stat().st_mtime if path.exists() else float("inf")
            stage, stop_time = (check, result.failures[0] if result.failures else "failed"), when
    if stage is None:
        missing = next((r for r in results if not (reports / f"{r.check}.json").exists()), None)
        if missing is not None:
            stage = (missing.check, missing.failures[0])
        else:
            why = f"{reports / GATE_SUMMARY.name} is missing or older than the reports: the gate did not finish"
            stage = ("gate", why)
    return stage[0], stage[1], results


def judged(reports: Path = REPORTS, train_info: Path = TRAIN_INFO) -> tuple[dict[str, Any], Table]:
    """(gate.json, its table) when the gate judged this run; otherwise a failed verdict naming the stage that
    stopped the run and why, with a table of every check."""
    if _current_verdict(reports, train_info):
        summary = json.loads((reports / GATE_SUMMARY.name).read_text())
        results = collect(reports, train_info.stat().st_mtime if train_info.exists() else None)
        return summary, Table(results, bool(summary.get("passed")), summary.get("model_version"))
    stage, why, results = stopped(reports, train_info)
    summary = {
        "passed": False,
        "model_version": None,
        "run_id": None,
        "stopped_at": stage,
        "failures": [f"{r.check}: {f}" for r in results for f in r.failures],
        "checks": {r.check: r.passed for r in results},
    }
    return summary, Table(results, False, stopped=(stage, why))


def explain(
    reports: Path = REPORTS, train_info: Path = TRAIN_INFO, form: Literal["markdown", "text"] = "markdown"
) -> tuple[dict[str, Any], str]:
    """(gate.json, the table in `form`). The Markdown of a judged run is gate.md as the gate wrote it (an Argo run
    brings back gate.json and gate.md alone)."""
    summary, table = judged(reports, train_info)
    if form == "text":
        return summary, text(table)
    if "stopped_at" not in summary:
        return summary, (reports / GATE_TABLE.name).read_text()
    return summary, markdown(table)
