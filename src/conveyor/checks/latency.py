"""latency: in-process single-record predict percentiles, batch throughput and model load time, measured on
the predictor the serving image uses (the fast exact path when it applies), with the scikit-learn Pipeline's
figures beside it for reference."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from conveyor import bundle
from conveyor.checks import holdout
from conveyor.checks.result import CheckResult
from conveyor.config import Settings
from conveyor.paths import TRAINED_MODEL
from conveyor.serve.loading import choose_predictor
from conveyor.serve.reference import PipelinePredictor, Record

SINGLE_CALLS = 500
REFERENCE_CALLS = 100  # the slower Pipeline is measured for comparison only
WARMUP_CALLS = 50
BATCH_ROWS = 1000
BATCH_REPEATS = 5
LOAD_REPEATS = 3


def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(
    predict: Callable[[Sequence[Record]], Any], records: list[Record], calls: int = SINGLE_CALLS
) -> dict[str, float]:
    """Single-record percentiles (ms) over `calls` records, and batch-of-1000 rows/s (median of repeats)."""
    rows = [[records[i % len(records)]] for i in range(calls + WARMUP_CALLS)]
    for row in rows[:WARMUP_CALLS]:
        predict(row)
    single_ms = np.array([_timed(lambda r=row: predict(r)) for row in rows[WARMUP_CALLS:]]) * 1000
    batch = [records[i % len(records)] for i in range(BATCH_ROWS)]
    batch_seconds = statistics.median(_timed(lambda: predict(batch)) for _ in range(BATCH_REPEATS))
    return {
        "single_p50_ms": float(np.percentile(single_ms, 50)),
        "single_p95_ms": float(np.percentile(single_ms, 95)),
        "single_p99_ms": float(np.percentile(single_ms, 99)),
        "batch_rows_per_s": BATCH_ROWS / batch_seconds,
    }


def _load(settings: Settings) -> Any:
    """What the serving app does before it is ready: load safely, then compile and verify the fast path."""
    pipeline = bundle.load(TRAINED_MODEL, settings)
    return choose_predictor(pipeline, PipelinePredictor(pipeline, settings.data.features), settings)


def run(settings: Settings) -> CheckResult:
    gate = settings.gates.latency
    load_seconds = statistics.median(_timed(lambda: _load(settings)) for _ in range(LOAD_REPEATS))
    predictor = _load(settings)
    reference = PipelinePredictor(bundle.load(TRAINED_MODEL, settings), settings.data.features)
    records = holdout.rows(settings).records()
    with threadpool_limits(1):  # as a serving worker runs; OpenMP threads on a shared host spin and stall
        metrics: dict[str, Any] = measure(predictor.proba, records)
        reference_metrics = measure(reference.proba, records, REFERENCE_CALLS)
    metrics |= {
        "load_seconds": load_seconds,
        "predictor": predictor.name,
        "reference": {"predictor": reference.name, **reference_metrics},
    }

    judgements = [threshold.judge(name, metrics[name]) for name, threshold in gate.thresholds().items()]
    result = CheckResult.judged("latency", judgements, metrics=metrics, thresholds=gate.model_dump())
    result.write()
    return result
