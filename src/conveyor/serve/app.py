"""The model API: FastAPI on one uvicorn process, with POST /v1/predict answered by a bare ASGI front before
FastAPI's middleware. `conveyor serve` runs it; docs/serving.md describes it.

The model loads in a background thread, so /healthz answers at once and /readyz turns 200 only once the model
is loaded, checked and warmed. A model that cannot be loaded leaves /readyz at 503 for good, with one log line
saying why: a pod that never becomes ready is never sent traffic, and never answers wrongly.

Every answer carries the request id (`x-request-id`). With a prediction log sink configured, a sampled share of
predictions (and a shadow model's scores of them) and all feedback go to the log (`recorder.py`)."""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from time import perf_counter
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Route

from conveyor.config import Settings
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

log = logging.getLogger("conveyor.serve")


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


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
            "413": _answer("the body is too large", "ErrorResponse"),
            "422": _answer("a field, value or batch size is invalid", "ErrorResponse"),
            "503": _answer("the model is not ready", "ErrorResponse"),
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
            "413": _answer("the body is too large", "ErrorResponse"),
            "422": _answer("a field, value or batch size is invalid", "ErrorResponse"),
            "503": _answer("the prediction log is off, or its queue is full (retry later)", "ErrorResponse"),
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


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The body, refused with 413 as soon as it exceeds `limit` bytes (declared or streamed)."""
    declared = next((value for name, value in scope["headers"] if name == b"content-length"), b"")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, [Problem("body", ABSENT, f"at most {limit} bytes", f"has {int(declared)} bytes")])
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":  # nobody reads the answer; it must not count as a 5xx
            raise BadRequest(400, [Problem("body", ABSENT, "a complete body", f"ended after {len(body)} bytes")])
        body += message.get("body", b"")
        if len(body) > limit:
            raise BadRequest(413, [Problem("body", ABSENT, f"at most {limit} bytes", f"has more than {limit} bytes")])
        if not message.get("more_body", False):
            return body


class _Predict:
    """POST /v1/predict as a bare ASGI app; returns the status it sent. Errors are raised as BadRequest."""

    def __init__(
        self, state: _State, schema: RequestSchema, metrics: Metrics, limit: int, recorder: Recorder | None
    ) -> None:
        self.state, self.schema, self.metrics, self.limit, self.recorder = state, schema, metrics, limit, recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> int:
        loaded = self.state.model
        request_id = scope[REQUEST_ID_KEY]
        if loaded is None:
            await _send_json(send, self.state.not_ready_body(), 503, (HEADER, request_id.encode()))
            return 503
        records, single = self.schema.validate(parse(await _read_body(scope, receive, self.limit)))
        if len(records) > SMALL_BATCH:  # mostly GIL-free tree work: let other requests run meanwhile
            proba = await run_in_threadpool(loaded.predictor.proba, records)
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

    def __init__(self, schema: FeedbackSchema, limit: int, recorder: Recorder | None) -> None:
        self.schema, self.limit, self.recorder = schema, limit, recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.recorder is None:
            error = (
                "the prediction log is off, so feedback is not recorded: set PREDICTION_LOG_DIR or PREDICTION_LOG_URL."
            )
            await _send_json(send, {"error": error}, 503)
            return
        items = self.schema.validate(parse(await _read_body(scope, receive, self.limit)))
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
            await _send_json(send, exc.body(), status, (HEADER, request_id.encode()))
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
        return _json(exc.body(), exc.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _json({"error": f"{request.method} {request.url.path}: {exc.detail}."}, exc.status_code)

    @app.get(routes.HEALTH, summary="The process is alive")
    async def health() -> Response:
        return _json({"status": "ok"})

    @app.get(routes.READY, summary="The model is loaded and warmed", responses={503: {"model": ErrorResponse}})
    async def ready() -> Response:
        if state.model is None:
            return state.not_ready()
        return _json({"status": "ready", "model_version": state.model.version})

    @app.get(routes.METRICS, summary="Prometheus metrics")
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
    predict = _Predict(state, schema, metrics, limit, recorder)
    app.router.routes.insert(0, Route(routes.PREDICT, predict, methods=["POST"]))
    feedback_schema = FeedbackSchema(settings)
    app.router.routes.insert(1, Route(routes.FEEDBACK, _Feedback(feedback_schema, limit, recorder), methods=["POST"]))
    read_body = lambda scope, receive: _read_body(scope, receive, limit)  # noqa: E731
    open_inference = v2.OpenInference(settings, schema, state, metrics, recorder, read_body, REQUEST_ID_KEY)
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


def serve(settings: Settings, host: str = "127.0.0.1", port: int | None = None, shadow_dir: Path | None = None) -> None:
    """Run the API in this process (one worker: the model is in memory once, the metrics are in one place)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings, shadow_dir=shadow_dir),
        host=host,
        port=port or settings.serve.port,
        access_log=False,
        server_header=False,
        log_level="info",
    )
