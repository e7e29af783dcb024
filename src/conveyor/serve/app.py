"""The model API: FastAPI on one uvicorn process, with POST /v1/predict answered by a bare ASGI front before
FastAPI's middleware. `conveyor serve` runs it; docs/serving.md describes it.

The model loads in a background thread, so /healthz answers at once and /readyz turns 200 only once the model
is loaded, checked and warmed. A model that cannot be loaded leaves /readyz at 503 for good, with one log line
saying why: a pod that never becomes ready is never sent traffic, and never answers wrongly."""

from __future__ import annotations

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
from conveyor.serve import loading, routes
from conveyor.serve.fast import SMALL_BATCH
from conveyor.serve.loading import LoadedModel
from conveyor.serve.metrics import Instrumented, Metrics, Receive, Scope, Send
from conveyor.serve.schema import (
    ABSENT,
    BadRequest,
    BatchPrediction,
    ErrorResponse,
    Problem,
    RequestSchema,
    SinglePrediction,
    parse,
)

MODEL_DIR_ENV = "MODEL_DIR"
REF_TEMPLATE = "#/components/schemas/{model}"
RECORD_REF = REF_TEMPLATE.format(model="Record")
JSON = "application/json"

log = logging.getLogger("conveyor.serve")


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


def _predict_operation(schema: RequestSchema) -> dict[str, Any]:
    """The OpenAPI operation of POST /v1/predict (a plain route, so FastAPI does not describe it)."""

    def answer(description: str, *models: str) -> dict[str, Any]:
        refs = [{"$ref": REF_TEMPLATE.format(model=m)} for m in models]
        return {
            "description": description,
            "content": {JSON: {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}},
        }

    return {
        "summary": "Predict one record (a JSON object) or a batch (an array of objects)",
        "operationId": "predict",
        "requestBody": {"required": True, "content": {JSON: {"schema": schema.body_schema(RECORD_REF)}}},
        "responses": {
            "200": answer(
                "SinglePrediction for one record, BatchPrediction for an array", "SinglePrediction", "BatchPrediction"
            ),
            "400": answer("the body is not JSON", "ErrorResponse"),
            "413": answer("the body is too large", "ErrorResponse"),
            "422": answer("a field, value or batch size is invalid", "ErrorResponse"),
            "503": answer("the model is not ready", "ErrorResponse"),
        },
    }


class _State:
    def __init__(self) -> None:
        self.model: LoadedModel | None = None
        self.error: str | None = None

    def not_ready_body(self) -> dict[str, str]:
        return {"error": f"the model is not ready: {self.error or 'the model is still loading'}"}

    def not_ready(self) -> Response:
        return _json(self.not_ready_body(), 503)


async def _send_json(send: Send, content: Any, status: int = 200) -> None:
    body = orjson.dumps(content)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
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

    def __init__(self, state: _State, schema: RequestSchema, metrics: Metrics, limit: int) -> None:
        self.state, self.schema, self.metrics, self.limit = state, schema, metrics, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> int:
        loaded = self.state.model
        if loaded is None:
            await _send_json(send, self.state.not_ready_body(), 503)
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
            await _send_json(send, {"probability": scores[0], "label": label, "model_version": loaded.version})
        else:
            labels = loaded.decision.record_labels(records, proba).tolist()
            predictions = [{"probability": p, "label": label} for p, label in zip(scores, labels, strict=True)]
            await _send_json(send, {"model_version": loaded.version, "predictions": predictions})
        return 200


class Front:
    """What uvicorn runs. POST /v1/predict goes straight to its handler, timed and counted here; everything else
    (probes, metrics, the model, the docs, unknown paths) goes to FastAPI (`api`). On the hot path, FastAPI's
    and Starlette's per-request layers (routing, dependencies, telemetry, body limit, exception handling) cost
    more CPU than the prediction itself: a FastAPI endpoint returning a constant spends about 90 µs per
    request here, this front with the whole prediction about 120 µs."""

    def __init__(self, api: FastAPI, predict: _Predict, metrics: Metrics) -> None:
        self.api, self.predict, self.metrics = api, predict, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != routes.PREDICT or scope["method"] != "POST":
            await self.api(scope, receive, send)
            return
        started = perf_counter()
        status = 500
        try:
            status = await self.predict(scope, receive, send)
        except BadRequest as exc:
            status = exc.status
            await _send_json(send, exc.body(), status)
        except Exception:
            log.exception("predict failed")
            with suppress(Exception):  # the answer may have started already, or the client be gone
                await _send_json(send, {"error": "internal error; the server log has the details."}, 500)
        finally:
            self.metrics.observe_request(routes.PREDICT, "POST", status, perf_counter() - started)


def create_app(settings: Settings, model_dir: Path | None = None, model: LoadedModel | None = None) -> Front:
    """The API for the bundle in `model_dir` (default $MODEL_DIR, else models/), or for an already loaded
    `model` (tests)."""
    folder = model_dir or Path(os.environ.get(MODEL_DIR_ENV) or MODELS)
    schema = RequestSchema(settings)
    metrics = Metrics(routes.ALL)
    state = _State()
    limit = settings.serve.max_body_bytes

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

    def load_in_background() -> None:
        try:
            serve_model(loading.load(folder, settings))
        except ConveyorError as exc:
            state.error = str(exc)
        except Exception as exc:  # whatever breaks, the process stays up, unready, and says why once
            state.error = f"{folder}: loading failed ({exc.__class__.__name__}: {exc})."
        if state.error:
            log.error("model not loaded, /readyz stays 503: %s", state.error)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if model is not None:
            serve_model(model)
        else:
            threading.Thread(target=load_in_background, name="model-loader", daemon=True).start()
        yield

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
            }
        )

    # The front answers POST /v1/predict; FastAPI keeps the route so that it is complete on its own (and
    # answers 405 to other methods). Its OpenAPI entry is written below.
    predict = _Predict(state, schema, metrics, limit)
    app.router.routes.insert(0, Route(routes.PREDICT, predict, methods=["POST"]))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = spec.setdefault("components", {}).setdefault("schemas", {})
            components["Record"] = schema.record_schema(REF_TEMPLATE)
            _, models = models_json_schema(
                [(m, "serialization") for m in (SinglePrediction, BatchPrediction, ErrorResponse)],
                ref_template=REF_TEMPLATE,
            )
            components.update(models["$defs"])
            spec["paths"] = {routes.PREDICT: {"post": _predict_operation(schema)}, **spec["paths"]}
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return Front(app, predict, metrics)


def serve(settings: Settings, host: str = "127.0.0.1", port: int | None = None) -> None:
    """Run the API in this process (one worker: the model is in memory once, the metrics are in one place)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port or settings.serve.port,
        access_log=False,
        server_header=False,
        log_level="info",
    )
