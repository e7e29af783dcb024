"""Prometheus series. The canary analysis (k8s AnalysisTemplate) queries these names and labels:
`conveyor_http_requests_total{route,method,status}`, `conveyor_http_request_duration_seconds{route}`,
`conveyor_prediction_score` and `conveyor_model_info{version,git_commit,data_version}`. The prediction log's
series are a contract too (alert rules, the dashboard): `conveyor_prediction_log_records_total{role}`,
`conveyor_prediction_log_dropped_total{reason}`, `conveyor_prediction_log_written_total{sink}`,
`conveyor_feedback_records_total`, `conveyor_shadow_prediction_score`, `conveyor_shadow_model_info{version}`.
`conveyor_http_rejected_total{reason}` counts what the limits refused or cut off (docs/serving.md, Limits).

The counts live in plain dicts and lists, updated by the event-loop thread (the only one that observes on the
request path), and become metric families when Prometheus scrapes: prometheus_client's own Counter and Histogram
take a lock and walk the buckets in Python on every observation, a tenth of a single-record request's cost here.
The prediction log's background threads count what they do under a lock of their own, off the request path.
Each app owns its registry, so two apps in one process (tests) never share counts. Nothing is written to disk:
no multiprocess directory, since the server runs one process."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = tuple(round(i * 0.05, 2) for i in range(1, 21))
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "other"  # the route and method label of anything unknown, so clients cannot grow the label set
ROLES = ("primary", "shadow")
DROP_REASONS = ("queue_full", "sink_error")
SINKS = ("file", "http")
# connections: over max_connections; header_timeout, body_timeout: a deadline missed; pending_body_bytes: over the
# cap on unfinished bodies; batch_rows: over the batch rows in flight.
REJECT_REASONS = ("connections", "header_timeout", "body_timeout", "pending_body_bytes", "batch_rows")

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
    # The text format Prometheus 2 asks for; the names here need none of 1.0.0's UTF-8 quoting, so the bytes agree.
    content_type = CONTENT_TYPE_PLAIN_0_0_4

    def __init__(self, routes: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.registry.register(self)
        self._routes = frozenset(routes)
        self._requests: dict[tuple[str, str, int], int] = {}
        self._durations: dict[str, _Histogram] = {}
        self._scores = _Histogram(SCORE_BUCKETS)
        self._model: list[str] | None = None
        self._rejected = dict.fromkeys(REJECT_REASONS, 0)
        # the prediction log: counted on the request path (event loop only) ...
        self._log_records = dict.fromkeys(ROLES, 0)
        self._log_refused = 0  # records dropped because the queue was full when the request offered them
        self._feedback = 0
        # ... and by its background threads, under this lock
        self._lock = threading.Lock()
        self._log_dropped = dict.fromkeys(DROP_REASONS, 0)
        self._log_written = dict.fromkeys(SINKS, 0)
        self._log_deleted = [0, 0]  # files, bytes
        self._shadow_scores = _Histogram(SCORE_BUCKETS)
        self._shadow: list[str] | None = None

    def observe_request(self, path: str, method: str, status: int, seconds: float) -> None:
        route = path if path in self._routes else OTHER
        key = (route, method if method in METHODS else OTHER, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        duration = self._durations.get(route)
        if duration is None:
            duration = self._durations[route] = _Histogram(LATENCY_BUCKETS)
        duration.observe(seconds)

    def rejected(self, reason: str) -> None:
        """A request or connection a limit refused or cut off (event loop)."""
        self._rejected[reason] += 1

    def observe_scores(self, scores: Iterable[float]) -> None:
        for score in scores:
            self._scores.observe(score)

    def model_loaded(self, metadata: dict[str, Any]) -> None:
        self._model = [str(metadata[k]) for k in ("version", "git_commit", "data_version")]

    def shadow_loaded(self, version: str) -> None:
        self._shadow = [version]

    def log_offered(self, records: int, shadow: bool) -> None:
        """Records of a sampled request handed to the prediction log (event loop)."""
        self._log_records["primary"] += records
        if shadow:
            self._log_records["shadow"] += records

    def log_refused(self, records: int) -> None:
        """Records the request path dropped: the queue was full (event loop)."""
        self._log_refused += records

    def feedback_received(self, records: int) -> None:
        self._feedback += records

    def log_dropped(self, reason: str, records: int) -> None:
        """Records a background thread dropped (a full sink queue, a failed sink)."""
        with self._lock:
            self._log_dropped[reason] += records

    def log_written(self, sink: str, records: int) -> None:
        with self._lock:
            self._log_written[sink] += records

    def log_deleted(self, files: int, size: int) -> None:
        with self._lock:
            self._log_deleted[0] += files
            self._log_deleted[1] += size

    def observe_shadow_scores(self, scores: Iterable[float]) -> None:
        with self._lock:
            for score in scores:
                self._shadow_scores.observe(score)

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
        rejected = CounterMetricFamily(
            "conveyor_http_rejected",
            "Connections and requests refused or cut off by a limit, by reason.",
            labels=["reason"],
        )
        for reason, count in self._rejected.items():
            rejected.add_metric([reason], count)
        yield rejected
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
        yield from self._collect_log()

    def _collect_log(self) -> Iterator[Metric]:
        records = CounterMetricFamily(
            "conveyor_prediction_log_records",
            "Records of sampled predict requests handed to the prediction log, by model role.",
            labels=["role"],
        )
        for role, count in self._log_records.items():
            records.add_metric([role], count)
        yield records
        with self._lock:
            dropped = dict(self._log_dropped)
            written = dict(self._log_written)
            deleted = list(self._log_deleted)
            shadow_scores = HistogramMetricFamily(
                "conveyor_shadow_prediction_score",
                "The shadow model's predicted probability of the positive label, one observation per logged record.",
            )
            self._shadow_scores.add_to(shadow_scores, [])
        dropped["queue_full"] += self._log_refused
        family = CounterMetricFamily(
            "conveyor_prediction_log_dropped",
            "Prediction log records lost, once for each sink they did not reach: a full queue, a failed sink.",
            labels=["reason"],
        )
        for reason, count in dropped.items():
            family.add_metric([reason], count)
        yield family
        family = CounterMetricFamily(
            "conveyor_prediction_log_written", "Prediction log records a sink wrote, by sink.", labels=["sink"]
        )
        for sink, count in written.items():
            family.add_metric([sink], count)
        yield family
        yield CounterMetricFamily(
            "conveyor_prediction_log_deleted_files", "Log files deleted to keep the folder under its size.", deleted[0]
        )
        yield CounterMetricFamily(
            "conveyor_prediction_log_deleted_bytes", "Bytes of the log files deleted for the size bound.", deleted[1]
        )
        yield CounterMetricFamily(
            "conveyor_feedback_records", "Feedback records (true labels) handed to the prediction log.", self._feedback
        )
        yield shadow_scores
        shadow = GaugeMetricFamily(
            "conveyor_shadow_model_info", "The shadow model (1 once it is loaded and warmed).", labels=["version"]
        )
        if self._shadow is not None:
            shadow.add_metric(self._shadow, 1)
        yield shadow

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
