"""Prometheus series. The canary analysis (k8s AnalysisTemplate) queries these names and labels:
`conveyor_http_requests_total{route,method,status}`, `conveyor_http_request_duration_seconds{route}`,
`conveyor_prediction_score` and `conveyor_model_info{version,git_commit,data_version}`.

The counts live in plain dicts and lists, updated by the event-loop thread (the only one that observes), and
become metric families when Prometheus scrapes: prometheus_client's own Counter and Histogram take a lock and
walk the buckets in Python on every observation, a tenth of a single-record request's cost here.
Each app owns its registry, so two apps in one process (tests) never share counts. Nothing is written to disk:
no multiprocess directory, since the server runs one process."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from time import perf_counter
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(round(i * 0.05, 2) for i in range(1, 21))
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"  # the route and method label of anything unknown, so clients cannot grow the label set

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Histogram:
    """Bucket counts (the last one past every bound) and the sum of what was observed."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        self.sum += value

    def add_to(self, family: HistogramMetricFamily, labels: list[str]) -> None:
        running, buckets = 0, []
        for bound, count in zip([*map(floatToGoString, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            buckets.append((bound, running))
        family.add_metric(labels, buckets, self.sum)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, routes: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.registry.register(self)
        self._routes = frozenset(routes)
        self._requests: dict[tuple[str, str, int], int] = {}
        self._durations: dict[str, _Histogram] = {}
        self._scores = _Histogram(SCORE_BUCKETS)
        self._model: list[str] | None = None

    def observe_request(self, path: str, method: str, status: int, seconds: float) -> None:
        route = path if path in self._routes else OTHER
        key = (route, method if method in METHODS else OTHER, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        duration = self._durations.get(route)
        if duration is None:
            duration = self._durations[route] = _Histogram(LATENCY_BUCKETS)
        duration.observe(seconds)

    def observe_scores(self, scores: Iterable[float]) -> None:
        for score in scores:
            self._scores.observe(score)

    def model_loaded(self, metadata: dict[str, Any]) -> None:
        self._model = [str(metadata[k]) for k in ("version", "git_commit", "data_version")]

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "conveyor_http_requests",
            "HTTP requests by route, method and status code.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in list(self._requests.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        durations = HistogramMetricFamily(
            "conveyor_http_request_duration_seconds",
            "Time from receiving a request to sending its response, by route.",
            labels=["route"],
        )
        for route, histogram in list(self._durations.items()):
            histogram.add_to(durations, [route])
        yield durations
        scores = HistogramMetricFamily(
            "conveyor_prediction_score", "Predicted probability of the positive label, one observation per record."
        )
        self._scores.add_to(scores, [])
        yield scores
        model = GaugeMetricFamily(
            "conveyor_model_info",
            "The model being served (1 once it is loaded and warmed).",
            labels=["version", "git_commit", "data_version"],
        )
        if self._model is not None:
            model.add_metric(self._model, 1)
        yield model

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Instrumented:
    """ASGI middleware counting and timing every HTTP request, including 404s and errors."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # what the client gets if the app raises before responding

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self.metrics.observe_request(scope["path"], scope["method"], status, perf_counter() - started)
