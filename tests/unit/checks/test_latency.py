"""The latency check on a small real model: it judges CPU time, names the predictor that served and the time to
ready, keeps wall-clock figures as information, and stops a model that burns CPU on the scikit-learn fallback."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import skops.io
import yaml

from conveyor import bundle
from conveyor.checks import latency
from conveyor.config import human, load_settings
from conveyor.data import frames
from conveyor.paths import TRAINED_MODEL
from conveyor.training import model
from tests.factories import synthetic, trained_project

ROWS = 1500


@pytest.fixture(scope="module")
def fast_project(tmp_path_factory: pytest.TempPathFactory, settings) -> Path:
    root = tmp_path_factory.mktemp("latency-fast")
    trained_project(root, synthetic(settings, ROWS))
    return root


def busy_project(root: Path, settings) -> Path:
    """A project whose model burns 3 ms of CPU per call (tests.support.slow.BusyClassifier)."""
    trained_project(root, synthetic(settings, ROWS))
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["model"] |= {
        "estimator": "tests.support.slow.BusyClassifier",
        "params": {"max_iter": 200},
        "trusted_types": [*raw["model"]["trusted_types"], "numpy.dtype", "tests.support.slow.BusyClassifier"],
    }
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    busy = load_settings(root / "params.yaml")
    with contextlib.chdir(root):
        train, _ = frames.split(frames.load_training(busy), busy)
        pipeline = model.build_pipeline(busy).fit(*frames.features_and_target(train, busy))
        skops.io.dump(pipeline, TRAINED_MODEL / bundle.MODEL_FILE)
    return root


def test_the_fast_path_passes_on_cpu_time_and_names_itself(fast_project: Path, monkeypatch) -> None:
    monkeypatch.chdir(fast_project)
    result = latency.run(load_settings("params.yaml"))
    assert result.passed, result.failures
    m = result.metrics
    assert m["predictor"] == "fast" and m["fallback_reason"] is None
    assert len(m["single_cpu_p99_ms_by_round"]) == latency.ROUNDS
    assert m["single_cpu_p99_ms"] == sorted(m["single_cpu_p99_ms_by_round"])[latency.ROUNDS // 2]
    assert set(m["wall"]) == {"single_p50_ms", "single_p99_ms", "batch_rows_per_s", "ready_seconds"}
    assert m["reference"]["predictor"] == "pipeline"
    labels = [j.label for j in result.judgements]
    assert labels == ["single-record p99", "batch throughput", "time to ready (fast exact path)"]
    written = json.loads((fast_project / "reports" / "latency.json").read_text())
    assert written["passed"] and written["metrics"]["single_cpu_p99_ms"] == m["single_cpu_p99_ms"]
    verdict = json.loads((fast_project / "reports" / latency.VERDICT_FILE).read_text())
    assert verdict == {"check": "latency", "passed": True, "predictor": "fast"}


def test_a_model_that_burns_cpu_on_the_fallback_fails_and_says_it_left_the_fast_path(
    tmp_path: Path, settings, monkeypatch
) -> None:
    root = busy_project(tmp_path, settings)
    monkeypatch.chdir(root)
    result = latency.run(load_settings("params.yaml"))
    assert not result.passed
    m = result.metrics
    assert m["predictor"] == "pipeline" and "BusyClassifier is not compiled" in m["fallback_reason"]
    assert m["single_cpu_p99_ms"] >= 3.0  # at least the CPU it burns per call
    assert "reference" not in m  # the fallback is the reference: measured once
    limit = settings.gates.latency.single_cpu_p99_ms.max
    digits = settings.gates.latency.single_cpu_p99_ms.digits
    sentence = f"single-record p99 = {human(m['single_cpu_p99_ms'], digits)} ms > {limit:g} ms"  # 12.61, not 12.610
    assert sentence in result.failures, result.failures
    assert any(
        f.startswith("the model left the fast serving path: BusyClassifier is served by the scikit-learn Pipeline")
        for f in result.failures
    )
    assert [j.label for j in result.judgements][-1] == "time to ready (scikit-learn fallback)"
    verdict = json.loads((root / "reports" / latency.VERDICT_FILE).read_text())
    assert verdict == {"check": "latency", "passed": False, "predictor": "pipeline"}


def test_single_takes_the_median_of_the_rounds_p99(monkeypatch) -> None:
    """One round disturbed (a context switch's cold caches) cannot move the gated figure."""
    costs = iter([0.1] * 100 + [5.0] * 100 + [0.2] * 100)  # ms of CPU per call, round by round
    clock = {"cpu": 0}

    def predict(rows) -> None:
        clock["cpu"] += int(next(costs) * 1e6)

    monkeypatch.setattr(latency.time, "process_time_ns", lambda: clock["cpu"])
    found = latency.single(predict, [{}], rounds=3)
    assert found["single_cpu_p99_ms_by_round"] == pytest.approx([0.1, 5.0, 0.2])
    assert found["single_cpu_p99_ms"] == pytest.approx(0.2)
