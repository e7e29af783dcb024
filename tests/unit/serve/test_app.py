"""The API in-process (Starlette's TestClient): predictions equal the Pipeline's, bad input is a 4xx, the
Prometheus series the canary analysis reads are there, and a model that cannot be vouched for is never served."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conveyor.config import Settings
from conveyor.serve import loading, routes
from conveyor.serve.app import create_app
from tests import serving


@pytest.fixture
def client(settings: Settings, loaded: loading.LoadedModel) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=loaded)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def records(serve_split: tuple[pd.DataFrame, pd.DataFrame], settings: Settings) -> list[dict[str, Any]]:
    return serving.records(serve_split[1].head(300), settings)


def _metrics(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get(routes.METRICS)
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_single_prediction_equals_the_pipeline(
    client: TestClient, loaded: loading.LoadedModel, records: list[dict[str, Any]]
) -> None:
    for record in records[:20]:
        response = client.post(routes.PREDICT, json=record)
        assert response.status_code == 200, response.text
        body = response.json()
        expected = float(loaded.reference.proba([record])[0])
        assert body == {
            "probability": expected,
            "label": int(expected >= loaded.decision.threshold),
            "model_version": serving.VERSION,
        }


def test_batch_prediction_equals_the_pipeline(
    client: TestClient, loaded: loading.LoadedModel, records: list[dict[str, Any]]
) -> None:
    response = client.post(routes.PREDICT, json=records)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == serving.VERSION
    expected = loaded.reference.proba(records)
    assert [p["probability"] for p in body["predictions"]] == expected.tolist()
    assert [p["label"] for p in body["predictions"]] == (expected >= loaded.decision.threshold).astype(int).tolist()


def _bad_bodies(record: dict[str, Any], settings: Settings) -> dict[str, tuple[dict[str, Any], int, str]]:
    """name -> (request keyword arguments, status, field named in the answer)."""
    number = next(n for n, f in settings.data.features.items() if f.type == "int")
    category = settings.data.categorical[0]
    raw = json.dumps({**record, number: 0}).replace(f'"{number}": 0', f'"{number}": NaN')
    limit = settings.serve.max_body_bytes
    json_type = {"Content-Type": "application/json"}  # what json= sends; raw content needs it said (else 415)
    return {
        "wrong type": ({"json": {**record, number: "forty"}}, 422, f"record.{number}"),
        "out of range": ({"json": {**record, number: 10**9}}, 422, f"record.{number}"),
        "NaN": ({"content": raw, "headers": json_type}, 422, f"record.{number}"),
        "unknown category": ({"json": {**record, category: "Atlantis"}}, 422, f"record.{category}"),
        "missing field": ({"json": {k: v for k, v in record.items() if k != number}}, 422, f"record.{number}"),
        "extra field": ({"json": {**record, "zodiac": "Leo"}}, 422, "record.zodiac"),
        "batch too large": ({"json": [record] * (settings.serve.max_batch_records + 1)}, 422, "body"),
        "malformed JSON": ({"content": b'{"age": ', "headers": json_type}, 400, "body"),
        "empty body": ({"content": b"", "headers": json_type}, 400, "body"),
        "body too large": ({"content": b" " * (limit + 1), "headers": json_type}, 413, "body"),
        "streamed body too large": ({"content": iter([b" " * limit, b" "]), "headers": json_type}, 413, "body"),
    }


def test_bad_input_is_a_4xx_naming_field_value_and_expectation(
    client: TestClient, records: list[dict[str, Any]], settings: Settings
) -> None:
    for name, (request, status, field) in _bad_bodies(records[0], settings).items():
        response = client.post(routes.PREDICT, **request)
        assert response.status_code == status, (name, response.text)
        body = response.json()
        assert body["problems"][0]["field"] == field, name
        assert body["problems"][0]["expected"], name
        assert body["error"].startswith(field) and "expected" in body["error"], name
    assert client.get("/v2/nowhere").status_code == 404
    assert client.get(routes.PREDICT).status_code == 405


def test_metrics_expose_the_series_the_canary_reads(
    client: TestClient, loaded: loading.LoadedModel, records: list[dict[str, Any]]
) -> None:
    client.post(routes.PREDICT, json=records[0])
    client.post(routes.PREDICT, json=records[:5])
    client.post(routes.PREDICT, json={"nothing": 1})
    client.get("/secret/../admin")
    samples = _metrics(client)
    route = routes.PREDICT

    def count(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    assert count("conveyor_http_requests_total", route=route, method="POST", status="200") == 2
    assert count("conveyor_http_requests_total", route=route, method="POST", status="422") == 1
    assert count("conveyor_http_requests_total", route="other", method="GET", status="404") == 1
    assert count("conveyor_http_request_duration_seconds_count", route=route) == 3
    assert count("conveyor_prediction_score_count") == 6
    scores = loaded.reference.proba([records[0], *records[:5]])
    assert count("conveyor_prediction_score_sum") == pytest.approx(float(np.sum(scores)))
    metadata = loaded.metadata
    assert (
        count(
            "conveyor_model_info",
            version=str(metadata["version"]),
            git_commit=metadata["git_commit"],
            data_version=metadata["data_version"],
        )
        == 1
    )


def test_model_endpoint_describes_the_bundle(
    client: TestClient, loaded: loading.LoadedModel, settings: Settings
) -> None:
    body = client.get(routes.MODEL).json()
    for key in ("version", "git_commit", "data_version", "metrics", "run_id"):
        assert body[key] == loaded.metadata[key], key
    assert body["features"] == {name: f.model_dump() for name, f in settings.data.features.items()}
    assert body["decision"]["threshold"] == loaded.decision.threshold
    assert body["predictor"] == "fast"


def test_openapi_request_body_is_the_feature_schema(client: TestClient, settings: Settings) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"][routes.PREDICT]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][0] == {"$ref": "#/components/schemas/Record"}
    record = spec["components"]["schemas"]["Record"]
    assert list(record["properties"]) == list(settings.data.features)
    assert client.get(routes.HEALTH).status_code == 200
    assert client.get(routes.READY).json() == {"status": "ready", "model_version": serving.VERSION}


def _wait_unready_reason(client: TestClient, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(routes.READY)
        if response.status_code == 200:
            raise AssertionError("a broken bundle became ready")
        if "still loading" not in response.json()["error"]:
            return response.json()["error"]
        time.sleep(0.1)
    raise AssertionError("the loader never finished")


class Intruder:
    """A type no allow-list names: skops must refuse to build it."""

    def __init__(self) -> None:
        self.payload = "anything"


def _spoil_model(folder: Path) -> None:
    (folder / "model.skops").write_bytes(b"PK\x03\x04 this is not a zip archive")


def _untrusted_model(folder: Path) -> None:
    skops.io.dump({"model": Intruder()}, folder / "model.skops")


def _other_schema(folder: Path) -> None:
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["features"].popitem()
    (folder / "metadata.json").write_text(json.dumps(metadata))


def _no_metadata(folder: Path) -> None:
    (folder / "metadata.json").unlink()


def _bad_decision(folder: Path) -> None:
    (folder / "decision.json").write_text('{"threshold": 7}')


BROKEN = {
    "corrupt model file": (_spoil_model, "model.skops: cannot be loaded safely"),
    "untrusted type in the model": (_untrusted_model, "Intruder"),
    "trained on another schema": (_other_schema, "another feature schema"),
    "no metadata": (_no_metadata, "metadata.json: missing"),
    "decision out of range": (_bad_decision, "threshold = 7 is invalid"),
}


@pytest.mark.parametrize("case", [*BROKEN, "no model directory"])
def test_a_bundle_that_cannot_be_vouched_for_keeps_readyz_503(
    case: str, serve_bundle: Path, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "models"
    if case in BROKEN:
        shutil.copytree(serve_bundle, folder)
        spoil, message = BROKEN[case]
        spoil(folder)
    else:
        message = "the model directory does not exist"
    with caplog.at_level(logging.INFO, logger="conveyor.serve"), TestClient(create_app(settings, folder)) as client:
        reason = _wait_unready_reason(client)
        predicted = client.post(routes.PREDICT, json={})
        health = client.get(routes.HEALTH)
    assert message in reason
    assert (predicted.status_code, health.status_code) == (503, 200)
    lines = [r for r in caplog.records if r.name == "conveyor.serve" and r.levelno >= logging.ERROR]
    assert len(lines) == 1 and message in lines[0].getMessage()
    assert "ready" not in caplog.text.replace("readyz", "")


def test_readyz_is_503_until_the_model_is_loaded_and_warmed(
    serve_bundle: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = threading.Event()
    real_load = loading.load

    def held_load(folder: Path, settings: Settings) -> loading.LoadedModel:
        go.wait(timeout=60)
        return real_load(folder, settings)

    monkeypatch.setattr(loading, "load", held_load)
    with TestClient(create_app(settings, serve_bundle)) as client:
        waiting = client.get(routes.READY)
        assert waiting.status_code == 503 and "still loading" in waiting.json()["error"]
        assert client.get(routes.HEALTH).status_code == 200
        assert client.get(routes.MODEL).status_code == 503
        go.set()
        deadline = time.monotonic() + 120
        while client.get(routes.READY).status_code != 200:
            assert time.monotonic() < deadline, "the model never became ready"
            time.sleep(0.1)
        assert client.get(routes.MODEL).json()["predictor"] == "fast"


def test_an_internal_error_is_a_counted_500_with_a_log_line(
    client: TestClient,
    loaded: loading.LoadedModel,
    records: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not bad input (that is a 4xx): a fault inside the server must still answer, be counted and be logged."""

    def broken(_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(loaded.predictor, "proba", broken)
    with caplog.at_level(logging.ERROR, logger="conveyor.serve"):
        response = client.post(routes.PREDICT, json=records[0])
    assert response.status_code == 500
    assert "internal error" in response.json()["error"]
    assert "predict failed" in caplog.text and "boom" in caplog.text
    key = ("conveyor_http_requests_total", (("method", "POST"), ("route", routes.PREDICT), ("status", "500")))
    assert _metrics(client)[key] == 1
