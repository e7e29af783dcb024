"""latency: what one prediction costs the serving predictor, measured so that a busy machine does not move it.

The gate judges CPU time (`time.process_time_ns`: every thread of this process, none of the neighbours'), in
one thread as a serving worker runs:

- single-record p99: the median, over ROUNDS rounds after the serving warm-up, of each round's p99 CPU time
  per one-record call. A neighbour that takes the core away stretches wall-clock time, not CPU time, and one
  round disturbed by a context switch's cold caches cannot carry the median;
- batch throughput: BATCH_ROWS rows divided by the median CPU time of one batch;
- time to ready: the CPU time the serving app spends before it is ready (safe load, choosing and verifying the
  fast path, the warm-up calls), measured on the very steps the app runs (conveyor.serve.loading.warmed).

Wall-clock figures (p50/p99, rows/s, seconds to ready) are in the report as information, and the gate table
names the predictor that served: the exact fast path, or the scikit-learn Pipeline it falls back to (with why).
A model slow in wall-clock time but not in CPU (one that waits) is not what this check measures.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from conveyor import bundle
from conveyor.checks import holdout
from conveyor.checks.result import CheckResult
from conveyor.config import Settings
from conveyor.paths import LATENCY_VERDICT, REPORTS, TRAINED_MODEL
from conveyor.serve import loading
from conveyor.serve.reference import PipelinePredictor, Record

CHECK = "latency"
VERDICT_FILE = LATENCY_VERDICT.name
ROUNDS = 5
ROUND_CALLS = 100  # one-record calls per round
ROUND_CPU_SECONDS = 1.0  # a round of a slow model stops after this much CPU (at least MIN_ROUND_CALLS calls)
MIN_ROUND_CALLS = 10
BATCH_ROWS = 1000
BATCH_REPEATS = 5
BATCH_CPU_SECONDS = 2.0  # a slow model's batches stop after this much CPU (at least one)
FALLBACK_PREFIX = "serving with the scikit-learn Pipeline: "  # how conveyor.serve.loading logs a fallback
PREDICTORS = {"fast": "fast exact path", "pipeline": "scikit-learn fallback"}


@contextmanager
def _cpu_and_wall() -> Iterator[dict[str, float]]:
    """Seconds of this process's CPU time and of wall-clock time spent in the block."""
    spent: dict[str, float] = {}
    cpu, wall = time.process_time_ns(), time.perf_counter_ns()
    yield spent
    spent["cpu"] = (time.process_time_ns() - cpu) / 1e9
    spent["wall"] = (time.perf_counter_ns() - wall) / 1e9


def single(predict: Callable[[Sequence[Record]], Any], records: list[Record], rounds: int = ROUNDS) -> dict[str, Any]:
    """One-record calls in `rounds` rounds: the gated CPU p99 (median of the rounds' p99s) and wall figures."""
    round_p99, cpu_all, wall_all = [], [], []
    call = 0
    for _ in range(rounds):
        cpu_ms, wall_ms, spent = [], [], 0.0
        while len(cpu_ms) < ROUND_CALLS and (spent < ROUND_CPU_SECONDS or len(cpu_ms) < MIN_ROUND_CALLS):
            row = [records[call % len(records)]]
            call += 1
            cpu, wall = time.process_time_ns(), time.perf_counter_ns()
            predict(row)
            cpu_ms.append((time.process_time_ns() - cpu) / 1e6)
            wall_ms.append((time.perf_counter_ns() - wall) / 1e6)
            spent += cpu_ms[-1] / 1000
        round_p99.append(float(np.percentile(cpu_ms, 99)))
        cpu_all += cpu_ms
        wall_all += wall_ms
    return {
        "single_cpu_p99_ms": statistics.median(round_p99),
        "single_cpu_p99_ms_by_round": round_p99,
        "single_cpu_p50_ms": float(np.percentile(cpu_all, 50)),
        "single_calls": len(cpu_all),
        "wall": {
            "single_p50_ms": float(np.percentile(wall_all, 50)),
            "single_p99_ms": float(np.percentile(wall_all, 99)),
        },
    }


def batch(predict: Callable[[Sequence[Record]], Any], records: list[Record]) -> dict[str, Any]:
    """Batches of BATCH_ROWS: rows per CPU second and per wall second, each over the median batch."""
    rows = [records[i % len(records)] for i in range(BATCH_ROWS)]
    cpu, wall = [], []
    while len(cpu) < BATCH_REPEATS and (not cpu or sum(cpu) < BATCH_CPU_SECONDS):
        with _cpu_and_wall() as spent:
            predict(rows)
        cpu.append(spent["cpu"])
        wall.append(spent["wall"])
    return {
        "batch_cpu_rows_per_s": BATCH_ROWS / max(statistics.median(cpu), 1e-9),
        "wall": {"batch_rows_per_s": BATCH_ROWS / max(statistics.median(wall), 1e-9)},
    }


@contextmanager
def _fallback_reasons() -> Iterator[list[str]]:
    """The warnings the loader logs when it falls back to the Pipeline (why the fast path does not apply)."""
    reasons: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: reasons.append(record.getMessage().removeprefix(FALLBACK_PREFIX))  # type: ignore[method-assign]
    logger = logging.getLogger("conveyor.serve")
    logger.addHandler(handler)
    try:
        yield reasons
    finally:
        logger.removeHandler(handler)


def ready(settings: Settings) -> tuple[loading.Predictor, dict[str, Any]]:
    """The serving predictor, made ready as the app makes it (safe load, fast path chosen and verified, warm-up),
    and what that took: CPU and wall-clock seconds, the predictor's name and why it is the fallback, if it is."""
    with _fallback_reasons() as reasons, _cpu_and_wall() as spent:
        pipeline = bundle.load(TRAINED_MODEL, settings)
        predictor = loading.warmed(pipeline, PipelinePredictor(pipeline, settings.data.features), settings)
    return predictor, {
        "ready_cpu_seconds": spent["cpu"],
        "predictor": predictor.name,
        "fallback_reason": "; ".join(reasons) or None,
        "wall": {"ready_seconds": spent["wall"]},
    }


def measure(settings: Settings) -> dict[str, Any]:
    """Every figure of the report; the gated ones at the top level, wall-clock ones under `wall`."""
    with threadpool_limits(1):  # as a serving worker runs; OpenMP threads on a shared host spin and stall
        predictor, loaded = ready(settings)
        records = holdout.rows(settings).records()
        timed = [loaded, single(predictor.proba, records), batch(predictor.proba, records)]
        if predictor.name != "pipeline":  # the Pipeline's own figures, for comparison only
            reference = PipelinePredictor(bundle.load(TRAINED_MODEL, settings), settings.data.features)
            compared = single(reference.proba, records, rounds=1) | batch(reference.proba, records)
    metrics: dict[str, Any] = {"wall": {}}
    for part in timed:
        metrics["wall"] |= part.pop("wall")
        metrics |= part
    if predictor.name != "pipeline":
        metrics["reference"] = {"predictor": "pipeline"} | {k: v for k, v in compared.items() if k != "wall"}
    return metrics


def run(settings: Settings) -> CheckResult:
    gate = settings.gates.latency
    metrics = measure(settings)
    served = PREDICTORS.get(metrics["predictor"], metrics["predictor"])
    judgements = [
        threshold.judge(name, metrics[name], subject=served if name == "ready_cpu_seconds" else None)
        for name, threshold in gate.thresholds().items()
    ]
    failures = []
    if metrics["predictor"] == "pipeline" and any(not j.passed for j in judgements):
        failures.append(
            f"the model left the fast serving path: {settings.model.estimator.rpartition('.')[2]} is served by the "
            f"scikit-learn Pipeline at {metrics['single_cpu_p99_ms']:.3g} ms CPU per record: "
            f"{metrics['fallback_reason'] or 'the fast path does not apply'}"
        )
    result = CheckResult.judged(CHECK, judgements, failures, metrics=metrics, thresholds=gate.model_dump())
    result.write()
    write_verdict(result)
    return result


def write_verdict(result: CheckResult, reports: Path = REPORTS) -> Path:
    """reports/latency.verdict.json: what the gate stage depends on in dvc.yaml. It changes when the verdict or the
    predictor does, not with every re-measured figure, so a re-measurement that agrees leaves the gate alone."""
    target = reports / VERDICT_FILE
    verdict = {"check": CHECK, "passed": result.passed, "predictor": result.metrics["predictor"]}
    text = json.dumps(verdict, sort_keys=True) + "\n"
    if not target.is_file() or target.read_text() != text:  # the same verdict keeps its time: the gate judged it
        target.write_text(text)
    return target
