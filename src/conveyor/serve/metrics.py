"""Prometheus series. The canary analysis (k8s AnalysisTemplate) queries these names and labels:
`conveyor_http_requests_total{route,method,status}`, `conveyor_http_request_duration_seconds{route}`,
`conveyor_prediction_score` and `conveyor_model_info{version,git_commit,data_version}`.

Each app owns its registry, so two apps in one process (tests) never share counts. Nothing is written to disk:
no multiprocess directory, since the server runs one process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from time import perf_counter
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(round(i * 0.05, 2) for i in range(1, 21))
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"  # the route and method label of anything unknown, so clients cannot grow the label set

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, routes: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "conveyor_http_requests",
            "HTTP requests by route, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "conveyor_http_request_duration_seconds",
            "Time from receiving a request to sending its response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.score = Histogram(
            "conveyor_prediction_score",
            "Predicted probability of the positive label, one observation per record.",
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        self.model = Gauge(
            "conveyor_model_info",
            "The model being served (1 once it is loaded and warmed).",
            ["version", "git_commit", "data_version"],
            registry=self.registry,
        )
        self._routes = frozenset(routes)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, path: str, method: str, status: int, seconds: float) -> None:
        key = (path if path in self._routes else OTHER, method if method in METHODS else OTHER, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(key[0], key[1], str(status)), self.duration.labels(key[0]))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_scores(self, scores: Iterable[float]) -> None:
        for score in scores:
            self.score.observe(score)

    def model_loaded(self, metadata: dict[str, Any]) -> None:
        self.model.labels(str(metadata["version"]), str(metadata["git_commit"]), str(metadata["data_version"])).set(1)

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
