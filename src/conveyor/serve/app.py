"""The model API: FastAPI on one uvicorn process, with POST /v1/predict answered by a bare ASGI front before
FastAPI's middleware. `conveyor serve` runs it; docs/serving.md describes it.

The model loads in a background thread, so /healthz answers at once and /readyz turns 200 only once the model
is loaded, checked and warmed. A model that cannot be loaded leaves /readyz at 503 for good, with one log line
saying why: a pod that never becomes ready is never sent traffic, and never answers wrongly.

Every answer carries the request id (`x-request-id`). With a prediction log sink configured, a sampled share of
predictions (and a shadow model's scores of them) and all feedback go to the log (`recorder.py`)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from time import perf_counter
from typing import Any, ClassVar

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from conveyor.config import ServeSettings, Settings
from conveyor.errors import ConveyorError
from conveyor.paths import MODELS
from conveyor.predictionlog import REQUEST_ID_HEADER
from conveyor.serve import loading, routes, v2
from conveyor.serve.fast import SMALL_BATCH
from conveyor.serve.loading import LoadedModel
from conveyor.serve.metrics import Instrumented, Message, Metrics, Receive, Scope, Send
from conveyor.serve.recorder import Recorder
from conveyor.serve.schema import (
    ABSENT,
    REQUEST_ID,
    BadRequest,
    BatchPrediction,
    ErrorResponse,
    FeedbackAccepted,
    FeedbackSchema,
    Problem,
    RequestSchema,
    SinglePrediction,
    parse,
)

MODEL_DIR_ENV = "MODEL_DIR"
SHADOW_MODEL_DIR_ENV = "SHADOW_MODEL_DIR"
REF_TEMPLATE = "#/components/schemas/{model}"
RECORD_REF = REF_TEMPLATE.format(model="Record")
FEEDBACK_REF = REF_TEMPLATE.format(model="Feedback")
JSON = "application/json"
REQUEST_ID_KEY = "conveyor.request_id"  # where the front leaves the request id in the ASGI scope
HEADER = REQUEST_ID_HEADER.encode()
PROMETHEUS_TEXT = "text/plain; version=0.0.4"  # what /metrics serves (with charset=utf-8), as its OpenAPI says

log = logging.getLogger("conveyor.serve")


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


class _Prometheus(Response):
    media_type = PROMETHEUS_TEXT


def _answer(description: str, *models: str) -> dict[str, Any]:
    refs = [{"$ref": REF_TEMPLATE.format(model=m)} for m in models]
    return {
        "description": description,
        "headers": {REQUEST_ID_HEADER: {"description": "the request id", "schema": {"type": "string"}}},
        "content": {JSON: {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}},
    }


def _request_id_parameter() -> dict[str, Any]:
    return {
        "name": REQUEST_ID_HEADER,
        "in": "header",
        "required": False,
        # No pattern in the schema: a value that does not match is replaced, never refused.
        "description": f"reused as the request id when it matches ^{REQUEST_ID.pattern.decode()}$; else the server makes one",
        "schema": {"type": "string"},
    }


def _predict_operation(schema: RequestSchema) -> dict[str, Any]:
    """The OpenAPI operation of POST /v1/predict (a plain route, so FastAPI does not describe it)."""
    return {
        "summary": "Predict one record (a JSON object) or a batch (an array of objects)",
        "operationId": "predict",
        "parameters": [_request_id_parameter()],
        "requestBody": {"required": True, "content": {JSON: {"schema": schema.body_schema(RECORD_REF)}}},
        "responses": {
            "200": _answer(
                "SinglePrediction for one record, BatchPrediction for an array", "SinglePrediction", "BatchPrediction"
            ),
            "400": _answer("the body is not JSON", "ErrorResponse"),
            "408": _answer("the body did not arrive within serve.body_timeout_s", "ErrorResponse"),
            "413": _answer("the body is too large", "ErrorResponse"),
            "415": _answer("the Content-Type is not application/json", "ErrorResponse"),
            "422": _answer("a field, value or batch size is invalid", "ErrorResponse"),
            "503": _answer(
                "the model is not ready, or the server is busy (with Retry-After: retry then)", "ErrorResponse"
            ),
        },
    }


def _feedback_operation(schema: FeedbackSchema) -> dict[str, Any]:
    """The OpenAPI operation of POST /v1/feedback (a plain route too)."""
    return {
        "summary": "The true label of logged predictions: one item (a JSON object) or a batch (an array)",
        "operationId": "feedback",
        "parameters": [_request_id_parameter()],
        "requestBody": {"required": True, "content": {JSON: {"schema": schema.body_schema(FEEDBACK_REF)}}},
        "responses": {
            "202": _answer("the items are handed to the prediction log", "FeedbackAccepted"),
            "400": _answer("the body is not JSON", "ErrorResponse"),
            "408": _answer("the body did not arrive within serve.body_timeout_s", "ErrorResponse"),
            "413": _answer("the body is too large", "ErrorResponse"),
            "415": _answer("the Content-Type is not application/json", "ErrorResponse"),
            "422": _answer("a field, value or batch size is invalid", "ErrorResponse"),
            "503": _answer(
                "the prediction log is off, or its queue is full or the server busy (with Retry-After: retry then)",
                "ErrorResponse",
            ),
        },
    }


class RequestIds:
    """Request ids: the client's own when it sent a sane one, else a random per-process prefix and a counter,
    32 hex characters like a uuid4's (0.5 µs against 4 µs for uuid4, which reads the OS's random source)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count(1).__next__

    def __call__(self, scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == HEADER:
                if REQUEST_ID.fullmatch(value):
                    return value.decode()
                break
        return f"{self._prefix}{self._count():016x}"


class _State:
    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.error: str | None = None
        self.shadow: LoadedModel | None = None
        self.shadow_error: str | None = None

    def not_ready_body(self) -> dict[str, str]:
        return {"error": f"the model is not ready: {self.error or 'the model is still loading'}"}

    def not_ready(self) -> Response:
        return _json(self.not_ready_body(), 503)


async def _send_json(send: Send, content: Any, status: int, *extra: tuple[bytes, bytes]) -> None:
    body = orjson.dumps(content)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


CLOSE = (b"connection", b"close")


class Bodies:
    """How request bodies are read: each at most `limit` bytes, whole within `timeout` seconds of its headers, and
    all bodies still arriving together at most `pending_cap` bytes (`pending` now). Beyond: 413, 408, 503, each
    closing the connection, since the rest of that body is never read."""

    def __init__(self, serve: ServeSettings, metrics: Metrics) -> None:
        self.limit, self.timeout = serve.max_body_bytes, serve.body_timeout_s
        self.pending, self.pending_cap = 0, serve.max_pending_body_bytes
        self.retry_after = (b"retry-after", str(serve.retry_after_s).encode())
        self.metrics = metrics

    async def read(self, scope: Scope, receive: Receive) -> bytes:
        _require_json(scope)
        limit = self.limit
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), b"")
        if declared.isdigit() and int(declared) > limit:
            problem = Problem("body", ABSENT, f"at most {limit} bytes", f"has {int(declared)} bytes")
            raise BadRequest(413, [problem], (CLOSE,))
        chunks: list[bytes] = []  # joined once: growing one bytes object would copy it whole for every chunk
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":  # nobody reads the answer; it must not count as a 5xx
                        problem = Problem("body", ABSENT, "a complete body", f"ended after {size} bytes")
                        raise BadRequest(400, [problem])
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    self.pending += len(chunk)
                    if size > limit:
                        problem = Problem("body", ABSENT, f"at most {limit} bytes", f"has more than {limit} bytes")
                        raise BadRequest(413, [problem], (CLOSE,))
                    if self.pending > self.pending_cap and message.get("more_body", False):
                        self.metrics.rejected("pending_body_bytes")
                        expected = f"at most {self.pending_cap} bytes of unfinished bodies in all; retry later"
                        problem = Problem("server", ABSENT, expected, "is busy receiving other bodies")
                        raise BadRequest(503, [problem], (CLOSE, self.retry_after))
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            self.metrics.rejected("body_timeout")
            expected = f"the whole body within {self.timeout:g} s of the headers"
            raise BadRequest(408, [Problem("body", ABSENT, expected, f"had {size} bytes")], (CLOSE,)) from None
        finally:
            self.pending -= size


def _require_json(scope: Scope) -> None:
    """415 unless the Content-Type is application/json (parameters such as charset allowed)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            if value.split(b";", 1)[0].strip().lower() == b"application/json":
                return
            problem = Problem("Content-Type", value.decode("latin-1"), JSON, "is not supported")
            raise BadRequest(415, [problem])
    raise BadRequest(415, [Problem("Content-Type", ABSENT, JSON, "is missing")])


class _Predict:
    """POST /v1/predict as a bare ASGI app; returns the status it sent. Errors are raised as BadRequest. Batches
    that go to the thread pool hold `rows_in_flight`; one that would take it beyond `max_rows` is a 503."""

    def __init__(
        self,
        state: _State,
        schema: RequestSchema,
        metrics: Metrics,
        bodies: Bodies,
        recorder: Recorder | None,
        max_rows: int,
    ) -> None:
        self.state, self.schema, self.metrics, self.bodies, self.recorder = state, schema, metrics, bodies, recorder
        self.rows_in_flight, self.max_rows = 0, max_rows

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> int:
        loaded = self.state.model
        request_id = scope[REQUEST_ID_KEY]
        if loaded is None:
            await _send_json(send, self.state.not_ready_body(), 503, (HEADER, request_id.encode()))
            return 503
        records, single = self.schema.validate(parse(await self.bodies.read(scope, receive)))
        if len(records) > SMALL_BATCH:  # mostly GIL-free tree work: let other requests run meanwhile
            rows = len(records)
            if self.rows_in_flight + rows > self.max_rows:
                self.metrics.rejected("batch_rows")
                expected = f"at most {self.max_rows} batch rows in flight; retry later"
                problem = Problem("server", ABSENT, expected, f"is busy with {self.rows_in_flight} rows")
                raise BadRequest(503, [problem], (self.bodies.retry_after,))
            self.rows_in_flight += rows
            try:
                proba = await run_in_threadpool(loaded.predictor.proba, records)
            finally:
                self.rows_in_flight -= rows
        else:
            proba = loaded.predictor.proba(records)
        scores = proba.tolist()
        self.metrics.observe_scores(scores)
        if single:
            label = loaded.decision.label(records[0], scores[0])
            labels = [label]
            answer: dict[str, Any] = {"probability": scores[0], "label": label, "model_version": loaded.version}
        else:
            labels = loaded.decision.record_labels(records, proba).tolist()
            predictions = [{"probability": p, "label": label} for p, label in zip(scores, labels, strict=True)]
            answer = {"model_version": loaded.version, "predictions": predictions}
        recorder = self.recorder
        if recorder is not None and recorder.sampled():
            recorder.offer(request_id, loaded.version, records, scores, labels, single)
        await _send_json(send, answer, 200, (HEADER, request_id.encode()))
        return 200


class _Feedback:
    """POST /v1/feedback as a bare ASGI app (under FastAPI's routing: not on the hot path). Errors are raised as
    BadRequest; 503 when no sink is configured or the log's queue has no room for the whole body. The front adds
    the request id to its answers, as to all of FastAPI's."""

    def __init__(self, schema: FeedbackSchema, bodies: Bodies, recorder: Recorder | None) -> None:
        self.schema, self.bodies, self.recorder = schema, bodies, recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.recorder is None:
            error = (
                "the prediction log is off, so feedback is not recorded: set PREDICTION_LOG_DIR or PREDICTION_LOG_URL."
            )
            await _send_json(send, {"error": error}, 503)
            return
        items = self.schema.validate(parse(await self.bodies.read(scope, receive)))
        if not self.recorder.feedback(items):
            error = f"the prediction log's queue is full ({self.recorder.feedback_bound} records): retry in a second."
            await _send_json(send, {"error": error}, 503, (b"retry-after", b"1"))
            return
        await _send_json(send, {"accepted": len(items)}, 202)


class Front:
    """What uvicorn runs. POST /v1/predict goes straight to its handler, timed and counted here; everything else
    (probes, metrics, the model, the docs, unknown paths) goes to FastAPI (`api`). On the hot path, FastAPI's
    and Starlette's per-request layers (routing, dependencies, telemetry, body limit, exception handling) cost
    more CPU than the prediction itself: a FastAPI endpoint returning a constant spends about 90 µs per
    request here, this front with the whole prediction about 120 µs."""

    def __init__(self, api: FastAPI, predict: _Predict, metrics: Metrics, recorder: Recorder | None) -> None:
        self.api, self.predict, self.metrics, self.recorder = api, predict, metrics, recorder
        self.request_id = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        request_id = scope[REQUEST_ID_KEY] = self.request_id(scope)
        if scope["path"] != routes.PREDICT or scope["method"] != "POST":
            await self.api(scope, receive, _with_header(send, request_id))
            return
        started = perf_counter()
        status = 500
        try:
            status = await self.predict(scope, receive, send)
        except BadRequest as exc:
            status = exc.status
            await _send_json(send, exc.body(), status, (HEADER, request_id.encode()), *exc.headers)
        except Exception:
            log.exception("predict failed")
            error = {"error": "internal error; the server log has the details."}
            with suppress(Exception):  # the answer may have started already, or the client be gone
                await _send_json(send, error, 500, (HEADER, request_id.encode()))
        finally:
            self.metrics.observe_request(routes.PREDICT, "POST", status, perf_counter() - started)


def _with_header(send: Send, request_id: str) -> Send:
    """`send` adding the request id to the response's headers (FastAPI's answers, its errors included)."""
    header = (HEADER, request_id.encode())

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    return sending


def _load(folder: Path, settings: Settings) -> tuple[LoadedModel | None, str | None]:
    """(the model, None) or (None, why not): whatever breaks, the process stays up and says why once."""
    try:
        return loading.load(folder, settings), None
    except ConveyorError as exc:
        return None, str(exc)
    except Exception as exc:
        return None, f"{folder}: loading failed ({exc.__class__.__name__}: {exc})."


def create_app(
    settings: Settings,
    model_dir: Path | None = None,
    model: LoadedModel | None = None,
    shadow_dir: Path | None = None,
    shadow: LoadedModel | None = None,
) -> Front:
    """The API for the bundle in `model_dir` (default $MODEL_DIR, else models/), or for an already loaded
    `model` (tests); with a shadow bundle in `shadow_dir` (default $SHADOW_MODEL_DIR, else none) or `shadow`.
    The prediction log's sinks come from params.yaml and $PREDICTION_LOG_DIR / $PREDICTION_LOG_URL; a sink that
    cannot work, or a shadow with no sink to log it to, is a ConveyorError here, before anything is served."""
    folder = model_dir or Path(os.environ.get(MODEL_DIR_ENV) or MODELS)
    shadow_env = os.environ.get(SHADOW_MODEL_DIR_ENV)
    shadow_folder = shadow_dir or (Path(shadow_env) if shadow_env else None)
    schema = RequestSchema(settings)
    metrics = Metrics((*routes.ALL, *v2.paths(settings.model.name)))
    state = _State()
    limit = settings.serve.max_body_bytes
    log_settings = settings.serve.prediction_log.with_env(os.environ)
    labels = (log_settings.negative_label, settings.data.positive_label)
    if (shadow_folder is not None or shadow is not None) and not log_settings.on:
        raise ConveyorError(
            f"{SHADOW_MODEL_DIR_ENV} = {str(shadow_folder or 'a loaded model')!r} is invalid while the prediction log "
            "is off: expected PREDICTION_LOG_DIR or PREDICTION_LOG_URL too, as a shadow's predictions are only logged."
        )
    recorder = None
    if log_settings.on:  # room for one batch of feedback beyond what sampled predictions may fill
        recorder = Recorder.configured(
            log_settings, labels, metrics, settings.model.name, reserve=settings.serve.max_batch_records
        )

    def serve_model(loaded: LoadedModel) -> None:
        metrics.model_loaded(loaded.metadata)
        state.model = loaded
        log.info(
            "model v%s ready in %.2f s (%s path) from %s",
            loaded.version,
            loaded.load_seconds,
            loaded.predictor.name,
            folder,
        )

    def serve_shadow(loaded: LoadedModel) -> None:
        assert recorder is not None
        state.shadow = recorder.shadow = loaded
        metrics.shadow_loaded(loaded.version)
        log.info("shadow model v%s ready (%s path) from %s", loaded.version, loaded.predictor.name, shadow_folder)

    def load_in_background() -> None:
        loaded, state.error = _load(folder, settings)
        if loaded is None:
            log.error("model not loaded, /readyz stays 503: %s", state.error)
            return
        serve_model(loaded)
        if shadow_folder is not None and shadow is None:
            loaded, state.shadow_error = _load(shadow_folder, settings)
            if loaded is None:
                log.error("shadow model not loaded, the primary serves alone: %s", state.shadow_error)
            else:
                serve_shadow(loaded)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if recorder is not None:
            recorder.start()
        if shadow is not None:
            serve_shadow(shadow)
        if model is not None:
            serve_model(model)
        else:
            threading.Thread(target=load_in_background, name="model-loader", daemon=True).start()
        try:
            yield
        finally:
            if recorder is not None:
                await run_in_threadpool(recorder.close)

    app = FastAPI(
        title="Conveyor model API",
        description="Predictions of the model the pipeline gated. The request schema comes from params.yaml.",
        version="1",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.add_middleware(Instrumented, metrics=metrics)

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, exc: BadRequest) -> Response:
        response = _json(exc.body(), exc.status)
        response.headers.update({name.decode(): value.decode() for name, value in exc.headers})
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        """Starlette's own errors; their headers kept (a 405's Allow, RFC 9110)."""
        response = _json({"error": f"{request.method} {request.url.path}: {exc.detail}."}, exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    @app.get(routes.HEALTH, summary="The process is alive")
    async def health() -> Response:
        return _json({"status": "ok"})

    @app.get(routes.READY, summary="The model is loaded and warmed", responses={503: {"model": ErrorResponse}})
    async def ready() -> Response:
        if state.model is None:
            return state.not_ready()
        return _json({"status": "ready", "model_version": state.model.version})

    metrics_answer = {
        "description": "Prometheus text format",
        "content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}},
    }

    @app.get(routes.METRICS, summary="Prometheus metrics", response_class=_Prometheus, responses={200: metrics_answer})
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get(routes.MODEL, summary="The model: version, provenance, metrics, feature schema")
    async def describe() -> Response:
        loaded = state.model
        if loaded is None:
            return state.not_ready()
        return _json(
            {
                **loaded.metadata,
                "decision": asdict(loaded.decision),
                "predictor": loaded.predictor.name,
                "limits": {
                    "max_batch_records": settings.serve.max_batch_records,
                    "max_body_bytes": limit,
                    "unknown_category": settings.serve.unknown_category,
                },
                "prediction_log": {
                    "sample": log_settings.sample if recorder is not None else 0.0,
                    "sinks": [sink.name for sink in recorder.sinks] if recorder is not None else [],
                },
                "shadow": _describe_shadow(state),
            }
        )

    # The front answers POST /v1/predict; FastAPI keeps the route so that it is complete on its own (and
    # answers 405 to other methods). Its OpenAPI entry is written below.
    bodies = Bodies(settings.serve, metrics)
    predict = _Predict(state, schema, metrics, bodies, recorder, settings.serve.max_batch_rows_in_flight)
    app.router.routes.insert(0, Route(routes.PREDICT, predict, methods=["POST"]))
    feedback_schema = FeedbackSchema(settings)
    app.router.routes.insert(1, Route(routes.FEEDBACK, _Feedback(feedback_schema, bodies, recorder), methods=["POST"]))
    open_inference = v2.OpenInference(settings, schema, state, metrics, recorder, bodies.read, REQUEST_ID_KEY)
    app.router.routes.extend(open_inference.routes())

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            components["Record"] = schema.record_schema(REF_TEMPLATE)
            components["Feedback"] = feedback_schema.item_schema()
            _, models = models_json_schema(
                [(m, "serialization") for m in (SinglePrediction, BatchPrediction, FeedbackAccepted, ErrorResponse)],
                ref_template=REF_TEMPLATE,
            )
            components.update(models["$defs"])
            spec["paths"] = {
                routes.PREDICT: {"post": _predict_operation(schema)},
                routes.FEEDBACK: {"post": _feedback_operation(feedback_schema)},
                **spec["paths"],
            }
            open_inference.document(spec, _request_id_parameter())
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return Front(app, predict, metrics, recorder)


def _describe_shadow(state: _State) -> dict[str, Any] | None:
    if state.shadow is not None:
        return {"version": state.shadow.version, "predictor": state.shadow.predictor.name}
    return {"error": state.shadow_error} if state.shadow_error else None


class _Guarded(HttpToolsProtocol):
    """uvicorn's httptools protocol (0.54) with what it lacks against slow and greedy clients. Its keep-alive timer
    runs only after a response, so a connection that never sends a request, or sends its headers a byte at a time,
    stays open for good; `h11_max_incomplete_event_size` only bounds h11's header buffer, not httptools'; and
    `limit_concurrency` answers 503 without Retry-After only once a connection's headers are in, having held its fd
    all along. Here: headers must be complete within `header_timeout_s` of the connection or of the request's
    first byte (else 408 and close), a connection beyond `max_connections` gets 503 with Retry-After and is closed at
    once, and one answered before its body ended is closed (its body is never read)."""

    serve: ClassVar[ServeSettings]
    metrics: ClassVar[Metrics]
    # When the headers now awaited began to be awaited (the connection, or the request's first byte); None while
    # none are. One watch timer per connection reads it, so a request costs a clock read, not a timer (3 µs).
    _awaited_since: float | None = None
    _watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.serve.max_connections:
            self.metrics.rejected("connections")
            self._refuse(503, b"Service Unavailable", b"retry-after: %d\r\n" % self.serve.retry_after_s)
            return
        self._awaited_since = self.loop.time()
        self._watch = self.loop.call_later(self.serve.header_timeout_s, self._check_headers)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._awaited_since is None:
            self._awaited_since = self.loop.time()

    def on_headers_complete(self) -> None:
        self._awaited_since = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # with no pipelined request queued, self.cycle is the one just answered
        if not self.pipeline and self.cycle.more_body and not self.transport.is_closing():
            self.transport.close()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    def _check_headers(self) -> None:
        """The watch: 408 and close when the awaited headers are late, else look again when they would be."""
        self._watch = None
        if self.transport.is_closing():
            return
        timeout, since = self.serve.header_timeout_s, self._awaited_since
        left = timeout if since is None else since + timeout - self.loop.time()
        if left > 0:
            self._watch = self.loop.call_later(left, self._check_headers)
            return
        self.metrics.rejected("header_timeout")
        if self.cycle is None or self.cycle.response_complete:  # else a response is being written: just close
            self._refuse(408, b"Request Timeout", b"")
        else:
            self.transport.close()

    def _refuse(self, status: int, reason: bytes, extra: bytes) -> None:
        head = b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n%s\r\n" % (status, reason, extra)
        self.transport.write(head)
        self.transport.close()


def serve(settings: Settings, host: str = "127.0.0.1", port: int | None = None, shadow_dir: Path | None = None) -> None:
    """Run the API in this process (one worker: the model is in memory once, the metrics are in one place)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    front = create_app(settings, shadow_dir=shadow_dir)
    protocol = type("GuardedHttpTools", (_Guarded,), {"serve": settings.serve, "metrics": front.metrics})
    uvicorn.run(
        front,
        host=host,
        port=port or settings.serve.port,
        access_log=False,
        server_header=False,
        log_level="info",
        http=protocol,
        timeout_keep_alive=settings.serve.keepalive_s,  # type: ignore[arg-type]  # used as a float (call_later)
    )
