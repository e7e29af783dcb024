"""The limits of docs/serving.md in-process: body deadline, the cap on unfinished bodies, batch rows in flight
(503 with Retry-After), and the protocol faults of issue 13: 415 for a body that is not application/json, Allow
on every 405, /metrics documented as what it serves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from conveyor.config import ServeSettings, Settings
from conveyor.serve import loading, routes
from conveyor.serve.app import JSON, PROMETHEUS_TEXT, Bodies, create_app
from conveyor.serve.metrics import Message, Metrics
from conveyor.serve.schema import BadRequest
from tests import serving


def _serve(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update={"serve": settings.serve.model_copy(update=update)})


@pytest.fixture
def client(settings: Settings, loaded: loading.LoadedModel, tmp_path: Path) -> Iterator[TestClient]:
    """The app with a prediction log folder, so that feedback reads its body."""
    log = settings.serve.prediction_log.model_copy(update={"dir": tmp_path / "log"})
    with TestClient(create_app(_serve(settings, prediction_log=log), model=loaded)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def records(serve_split: tuple[pd.DataFrame, pd.DataFrame], settings: Settings) -> list[dict[str, Any]]:
    return serving.records(serve_split[1].head(1000), settings)


JSON_HEADERS = [(b"content-type", b"application/json")]


def _scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "headers": [*JSON_HEADERS, *headers]}


async def _never() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def _chunks(*chunks: bytes, then_hang: bool = True) -> Any:
    """A receive() giving these chunks (more to come), then hanging or ending the body."""
    queue = list(chunks)

    async def receive() -> Message:
        if queue:
            return {"type": "http.request", "body": queue.pop(0), "more_body": True}
        if then_hang:
            return await _never()
        return {"type": "http.request", "body": b"", "more_body": False}

    return receive


def _refusal(settings: Settings, scope: dict[str, Any], receive: Any) -> BadRequest:
    bodies = Bodies(settings.serve, Metrics(routes.ALL))
    with pytest.raises(BadRequest) as caught:
        asyncio.run(bodies.read(scope, receive))
    return caught.value


def test_a_body_that_never_ends_is_a_408_closing_the_connection(settings: Settings) -> None:
    started = time.monotonic()
    refused = _refusal(_serve(settings, body_timeout_s=0.3), _scope(), _chunks(b'{"age": '))
    assert time.monotonic() - started < 10
    assert refused.status == 408 and (b"connection", b"close") in refused.headers
    assert str(refused) == "body had 8 bytes: expected the whole body within 0.3 s of the headers."


def test_a_declared_length_over_the_limit_is_refused_before_reading(settings: Settings) -> None:
    declared = (b"content-length", str(settings.serve.max_body_bytes + 1).encode())
    refused = _refusal(settings, _scope(declared), _never)
    assert refused.status == 413 and (b"connection", b"close") in refused.headers


def test_unfinished_bodies_beyond_the_cap_are_503_with_retry_after(settings: Settings) -> None:
    tight = _serve(settings, max_body_bytes=1000, max_pending_body_bytes=1500, retry_after_s=2)
    metrics = Metrics(routes.ALL)
    bodies = Bodies(tight.serve, metrics)

    async def two_at_once() -> list[Any]:
        first = asyncio.ensure_future(bodies.read(_scope(), _chunks(b" " * 800)))
        await asyncio.sleep(0.05)  # the first holds its 800 bytes
        second = await asyncio.gather(bodies.read(_scope(), _chunks(b" " * 800)), return_exceptions=True)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        return second

    refused = asyncio.run(two_at_once())[0]
    assert isinstance(refused, BadRequest) and refused.status == 503
    assert (b"retry-after", b"2") in refused.headers and (b"connection", b"close") in refused.headers
    assert str(refused).startswith("server is busy receiving other bodies: expected at most 1500 bytes")
    assert bodies.pending == 0  # every body's bytes were given back, refused or cancelled
    assert b'conveyor_http_rejected_total{reason="pending_body_bytes"} 1.0' in metrics.render()
    whole = asyncio.run(bodies.read(_scope(), _chunks(b"{}", then_hang=False)))
    assert whole == b"{}"


@pytest.mark.parametrize(
    ("content_type", "said"),
    [
        ("text/plain", 'Content-Type = "text/plain" is not supported: expected application/json.'),
        (
            "multipart/form-data; boundary=x",
            'Content-Type = "multipart/form-data; boundary=x" is not supported: expected application/json.',
        ),
        (None, "Content-Type is missing: expected application/json."),
    ],
)
@pytest.mark.parametrize("path", [routes.PREDICT, routes.FEEDBACK])
def test_a_json_body_not_sent_as_json_is_415(
    client: TestClient, records: list[dict[str, Any]], content_type: str | None, said: str, path: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(path, content=orjson.dumps(records[0]), headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["error"] == said
    assert client.post(routes.PREDICT, json=records[0], headers={"Content-Type": f"{JSON}; charset=utf-8"}).is_success


def test_the_415_is_in_the_openapi_of_both_posts(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in (routes.PREDICT, routes.FEEDBACK):
        assert {"408", "415"} <= set(spec["paths"][path]["post"]["responses"]), path


def test_every_405_says_what_is_allowed(client: TestClient) -> None:
    allowed = {routes.PREDICT: "POST", routes.FEEDBACK: "POST"}
    for path in routes.ALL:
        wrong = "DELETE" if path not in allowed else "GET"
        response = client.request(wrong, path)
        assert response.status_code == 405, path
        methods = {m.strip() for m in response.headers["allow"].split(",")}
        assert methods == {allowed.get(path, "GET")}, path


def test_metrics_are_documented_as_the_prometheus_text_they_are(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    documented = set(spec["paths"][routes.METRICS]["get"]["responses"]["200"]["content"])
    assert documented == {PROMETHEUS_TEXT} == {"text/plain; version=0.0.4"}
    served = client.get(routes.METRICS).headers["content-type"]
    assert served.startswith(PROMETHEUS_TEXT + ";") and "charset=utf-8" in served


def test_concurrent_batches_beyond_the_rows_in_flight_get_503_with_retry_after(
    settings: Settings, loaded: loading.LoadedModel, records: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: 64 concurrent 1,000-row batches were all accepted. With room for 2 in flight, 12 sent at once
    (each held 0.3 s in the pool) get 200 or 503 + Retry-After, no other status, and the 200s are right."""
    capped = _serve(settings, max_batch_rows_in_flight=2 * len(records))
    real = loaded.predictor.proba

    def slow(batch: list[dict[str, Any]]) -> Any:
        time.sleep(0.3)
        return real(batch)

    expected = loaded.reference.proba(records)
    with TestClient(create_app(capped, model=loaded)) as capped_client:
        monkeypatch.setattr(loaded.predictor, "proba", slow)
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: capped_client.post(routes.PREDICT, json=records), range(12)))
        monkeypatch.setattr(loaded.predictor, "proba", real)
        metrics = capped_client.get(routes.METRICS).text
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {200, 503}, statuses
    for answer in answers:
        if answer.status_code == 503:
            assert answer.headers["retry-after"] == str(settings.serve.retry_after_s)
            assert answer.json()["error"].startswith("server is busy with ")
        else:
            assert np.array_equal([p["probability"] for p in answer.json()["predictions"]], expected)
    rejected = statuses.count(503)
    assert f'conveyor_http_rejected_total{{reason="batch_rows"}} {float(rejected)}' in metrics


@pytest.mark.parametrize(
    ("update", "said"),
    [
        ({"max_pending_body_bytes": 1000}, "expected room for one whole body"),
        ({"max_batch_rows_in_flight": 10}, "expected room for one whole batch"),
        ({"header_timeout_s": 0}, "greater than 0"),
        ({"max_conections": 10}, "Extra inputs are not permitted"),
    ],
)
def test_limits_in_params_are_checked(settings: Settings, update: dict[str, Any], said: str) -> None:
    with pytest.raises(ValueError, match=said):
        ServeSettings.model_validate({**settings.serve.model_dump(), **update})
