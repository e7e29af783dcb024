"""latency: in-process single-record predict percentiles, batch throughput and model load time."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from conveyor import data, model
from conveyor.checks.result import CheckResult, breach
from conveyor.config import Settings
from conveyor.paths import TRAINED_MODEL

SINGLE_CALLS = 300
WARMUP_CALLS = 30
BATCH_ROWS = 1000
BATCH_REPEATS = 5
LOAD_REPEATS = 3


def _timed(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(predict: Callable[[pd.DataFrame], Any], records: pd.DataFrame) -> dict[str, float]:
    """Single-record percentiles (ms) over SINGLE_CALLS rows, and batch-of-1000 rows/s (median of repeats)."""
    rows = [records.iloc[[i % len(records)]] for i in range(SINGLE_CALLS + WARMUP_CALLS)]
    for row in rows[:WARMUP_CALLS]:
        predict(row)
    single_ms = np.array([_timed(lambda r=row: predict(r)) for row in rows[WARMUP_CALLS:]]) * 1000
    batch = records.sample(n=BATCH_ROWS, replace=len(records) < BATCH_ROWS, random_state=0)
    batch_seconds = statistics.median(_timed(lambda: predict(batch)) for _ in range(BATCH_REPEATS))
    return {
        "single_p50_ms": float(np.percentile(single_ms, 50)),
        "single_p95_ms": float(np.percentile(single_ms, 95)),
        "single_p99_ms": float(np.percentile(single_ms, 99)),
        "batch_rows_per_s": BATCH_ROWS / batch_seconds,
    }


def run(settings: Settings) -> CheckResult:
    gate = settings.gates.latency
    load_seconds = statistics.median(_timed(lambda: model.load(TRAINED_MODEL, settings)) for _ in range(LOAD_REPEATS))
    pipeline = model.load(TRAINED_MODEL, settings)
    _, holdout = data.split(data.load_training(settings), settings)
    records, _ = data.features_and_target(holdout, settings)
    with threadpool_limits(1):  # as a serving worker runs; OpenMP threads on a shared host spin and stall
        metrics = measure(pipeline.predict_proba, records) | {"load_seconds": load_seconds}

    failures = []
    if metrics["single_p99_ms"] > gate.max_single_p99_ms:
        failures.append(breach("single_p99_ms", metrics["single_p99_ms"], ">", gate.max_single_p99_ms))
    if metrics["batch_rows_per_s"] < gate.min_batch_rows_per_s:
        failures.append(breach("batch_rows_per_s", metrics["batch_rows_per_s"], "<", gate.min_batch_rows_per_s))
    if load_seconds > gate.max_load_seconds:
        failures.append(breach("load_seconds", load_seconds, ">", gate.max_load_seconds))
    result = CheckResult.from_failures("latency", failures, metrics=metrics, thresholds=gate.model_dump())
    result.write()
    return result
