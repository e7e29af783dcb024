"""The API's lightweight series expose exactly what prometheus_client's own Counter and Histogram would."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conveyor.serve import routes
from conveyor.serve.metrics import LATENCY_BUCKETS, SCORE_BUCKETS, Metrics


def _samples(text: str, prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(prefix) and not s.name.endswith("_created")
    }


def test_series_equal_prometheus_clients_own() -> None:
    rng = random.Random(5)
    ours = Metrics(routes.ALL)
    registry = CollectorRegistry()
    requests = Counter("conveyor_http_requests", "h", ["route", "method", "status"], registry=registry)
    duration = Histogram(
        "conveyor_http_request_duration_seconds", "h", ["route"], buckets=LATENCY_BUCKETS, registry=registry
    )
    score = Histogram("conveyor_prediction_score", "h", buckets=SCORE_BUCKETS, registry=registry)
    # Values on the bucket bounds too: a bound is inclusive ("le").
    seconds = [*LATENCY_BUCKETS, *(rng.expovariate(300) for _ in range(500)), 7.0]
    for i, value in enumerate(seconds):
        path, status = (routes.PREDICT, 200) if i % 3 else ("/elsewhere", 404)
        ours.observe_request(path, "POST", status, value)
        route = path if path in routes.ALL else "other"
        requests.labels(route, "POST", str(status)).inc()
        duration.labels(route).observe(value)
    probabilities = [*SCORE_BUCKETS, 0.0, *(rng.random() for _ in range(300))]
    ours.observe_scores(probabilities)
    for p in probabilities:
        score.observe(p)
    expected = generate_latest(registry).decode()
    got = ours.render().decode()
    for prefix in ("conveyor_http_requests", "conveyor_http_request_duration_seconds", "conveyor_prediction_score"):
        mine, theirs = _samples(got, prefix), _samples(expected, prefix)
        assert mine.keys() == theirs.keys(), prefix
        for key, value in theirs.items():
            assert mine[key] == pytest.approx(value, abs=1e-9), key


def test_model_info_appears_once_loaded() -> None:
    metrics = Metrics(routes.ALL)
    assert not _samples(metrics.render().decode(), "conveyor_model_info")
    metrics.model_loaded({"version": "3", "git_commit": "abc", "data_version": "d1"})
    samples = _samples(metrics.render().decode(), "conveyor_model_info")
    assert samples == {("conveyor_model_info", (("data_version", "d1"), ("git_commit", "abc"), ("version", "3"))): 1.0}
