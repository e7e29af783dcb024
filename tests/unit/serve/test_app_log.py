"""The API in-process with its prediction log: the request id on every answer, POST /v1/feedback and its errors,
what a sampled request and its feedback leave in the log, a shadow model, and nothing written when the log is off."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conveyor import predictionlog
from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.predictionlog import Feedback, Prediction
from conveyor.serve import loading, routes
from conveyor.serve.app import create_app
from tests import serving


def logged(settings: Settings, **update: Any) -> Settings:
    """`settings` with serve.prediction_log changed."""
    log = settings.serve.prediction_log.model_copy(update=update)
    return settings.model_copy(update={"serve": settings.serve.model_copy(update={"prediction_log": log})})


@pytest.fixture(scope="module")
def records(serve_split: tuple[pd.DataFrame, pd.DataFrame], settings: Settings) -> list[dict[str, Any]]:
    return serving.records(serve_split[1].head(40), settings)


@pytest.fixture
def client(settings: Settings, loaded: loading.LoadedModel) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=loaded)) as test_client:
        yield test_client


JSON_TYPE = {"Content-Type": "application/json"}


def _requests(record: dict[str, Any], settings: Settings) -> dict[str, tuple[str, str, dict[str, Any], int]]:
    """name -> (method, path, request keyword arguments, status)."""
    return {
        "prediction": ("POST", routes.PREDICT, {"json": record}, 200),
        "invalid record": ("POST", routes.PREDICT, {"json": {**record, "age": -1}}, 422),
        "not JSON": ("POST", routes.PREDICT, {"content": b"{", "headers": JSON_TYPE}, 400),
        "too large": (
            "POST",
            routes.PREDICT,
            {"content": b" " * (settings.serve.max_body_bytes + 1), "headers": JSON_TYPE},
            413,
        ),
        "not application/json": ("POST", routes.PREDICT, {"content": b"{}"}, 415),
        "unknown path": ("GET", "/nowhere", {}, 404),
        "wrong method": ("GET", routes.PREDICT, {}, 405),
        "health": ("GET", routes.HEALTH, {}, 200),
        "metrics": ("GET", routes.METRICS, {}, 200),
        "model": ("GET", routes.MODEL, {}, 200),
        "openapi": ("GET", "/openapi.json", {}, 200),
        "feedback, log off": ("POST", routes.FEEDBACK, {"json": {"id": "a", "label": ">50K"}}, 503),
    }


def test_every_answer_carries_a_request_id(
    client: TestClient, records: list[dict[str, Any]], settings: Settings
) -> None:
    ids = []
    for name, (method, path, kwargs, status) in _requests(records[0], settings).items():
        response = client.request(method, path, **kwargs)
        assert response.status_code == status, (name, response.text)
        ids.append(response.headers[predictionlog.REQUEST_ID_HEADER])
        assert ids[-1] and len(ids[-1]) == 32 and int(ids[-1], 16) >= 0, name
    assert len(set(ids)) == len(ids)


def test_a_sane_client_request_id_is_kept_and_any_other_replaced(
    client: TestClient, records: list[dict[str, Any]]
) -> None:
    for sent, kept in [
        ("trace-01.AB_c", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("a:b", False),
        ("a b", False),
        ("ünï", False),
        ("", False),
    ]:
        for method, path in (("POST", routes.PREDICT), ("GET", "/nowhere")):
            response = client.request(
                method, path, json=records[0], headers={predictionlog.REQUEST_ID_HEADER: sent.encode("utf-8")}
            )
            got = response.headers[predictionlog.REQUEST_ID_HEADER]
            assert (got == sent) is kept and (kept or len(got) == 32), (sent, got)


def test_a_server_error_and_a_model_not_ready_carry_the_request_id(
    client: TestClient,
    loaded: loading.LoadedModel,
    records: list[dict[str, Any]],
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(loaded.predictor, "proba", broken)
    response = client.post(routes.PREDICT, json=records[0], headers={predictionlog.REQUEST_ID_HEADER: "fault-1"})
    assert (response.status_code, response.headers[predictionlog.REQUEST_ID_HEADER]) == (500, "fault-1")
    with TestClient(create_app(settings, tmp_path / "no-model")) as unready:
        for path in (routes.READY, routes.MODEL):
            answer = unready.get(path, headers={predictionlog.REQUEST_ID_HEADER: "wait-1"})
            assert (answer.status_code, answer.headers[predictionlog.REQUEST_ID_HEADER]) == (503, "wait-1")
        answer = unready.post(routes.PREDICT, json=records[0], headers={predictionlog.REQUEST_ID_HEADER: "wait-2"})
        assert (answer.status_code, answer.headers[predictionlog.REQUEST_ID_HEADER]) == (503, "wait-2")


def _bad_feedback(settings: Settings) -> dict[str, tuple[dict[str, Any], int, str, str]]:
    """name -> (request keyword arguments, status, field named, value shown)."""
    good = {"id": "abc:1", "label": ">50K"}
    cap = settings.serve.max_batch_records
    return {
        "unknown label": ({"json": {**good, "label": "rich"}}, 422, "feedback.label", '"rich"'),
        "label 1 instead of its name": ({"json": {**good, "label": 1}}, 422, "feedback.label", "1"),
        "missing label": ({"json": {"id": "abc"}}, 422, "feedback.label", "None"),
        "id with a space": ({"json": {**good, "id": "a b"}}, 422, "feedback.id", '"a b"'),
        "id a number": ({"json": {**good, "id": 7}}, 422, "feedback.id", "7"),
        "extra field": ({"json": {**good, "score": 0.3}}, 422, "feedback.score", "0.3"),
        "bad item in a batch": ({"json": [good, {**good, "label": "?"}]}, 422, "feedback[1].label", '"?"'),
        "not an object": ({"json": "abc"}, 422, "body", '"abc"'),
        "empty batch": ({"json": []}, 422, "body", "None"),
        "batch too large": ({"json": [good] * (cap + 1)}, 422, "body", "None"),
        "not JSON": ({"content": b'{"id": ', "headers": JSON_TYPE}, 400, "body", '{"id": '),
        "too large": (
            {"content": b" " * (settings.serve.max_body_bytes + 1), "headers": JSON_TYPE},
            413,
            "body",
            "None",
        ),
        "sent as text/plain": (
            {"content": b'{"id": "a", "label": ">50K"}', "headers": {"Content-Type": "text/plain"}},
            *(415, "Content-Type", '"text/plain"'),
        ),
    }


def test_feedback_errors_name_the_field_the_value_and_what_was_expected(
    settings: Settings, loaded: loading.LoadedModel, tmp_path: Path
) -> None:
    app = create_app(logged(settings, dir=tmp_path / "log"), model=loaded)
    with TestClient(app) as client:
        for name, (kwargs, status, field, value) in _bad_feedback(settings).items():
            response = client.post(routes.FEEDBACK, **kwargs)
            assert response.status_code == status, (name, response.text)
            body = response.json()
            problem = body["problems"][0]
            assert (problem["field"], str(problem["value"])) == (field, value), name
            assert body["error"].startswith(field) and "expected" in body["error"], name
            assert body["error"].count(". ") == 0 and body["error"].endswith("."), name
        assert "one of '<=50K', '>50K'" in client.post(routes.FEEDBACK, json={"id": "a", "label": "?"}).text
    assert list(predictionlog.read(tmp_path / "log")) == []


def test_feedback_with_the_log_off_is_503_saying_so(client: TestClient) -> None:
    response = client.post(routes.FEEDBACK, json={"id": "abc", "label": ">50K"})
    assert response.status_code == 503
    assert "prediction log is off" in response.json()["error"] and "PREDICTION_LOG_DIR" in response.json()["error"]


def test_sampled_predictions_and_their_feedback_join_by_request_id(
    settings: Settings,
    loaded: loading.LoadedModel,
    records: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREDICTION_LOG_DIR", str(tmp_path / "log"))
    with TestClient(create_app(logged(settings, sample=1.0, exclude=["race"]), model=loaded)) as client:
        one = client.post(routes.PREDICT, json=records[0])
        batch = client.post(routes.PREDICT, json=records[1:4])
        ids = [one.headers["x-request-id"]] + [f"{batch.headers['x-request-id']}:{i}" for i in range(3)]
        answer = client.post(routes.FEEDBACK, json=[{"id": i, "label": ">50K"} for i in ids])
        assert (answer.status_code, answer.json()) == (202, {"accepted": 4})
        description = client.get(routes.MODEL).json()
    log = list(predictionlog.read(tmp_path / "log"))
    predictions = [r for r in log if isinstance(r, Prediction)]
    assert [p.id for p in predictions] == ids
    assert [p.probability for p in predictions] == [one.json()["probability"]] + [
        p["probability"] for p in batch.json()["predictions"]
    ]
    labels = [one.json()["label"]] + [p["label"] for p in batch.json()["predictions"]]
    assert [p.label for p in predictions] == [("<=50K", ">50K")[y] for y in labels]
    assert [p.features for p in predictions] == [{k: v for k, v in r.items() if k != "race"} for r in records[:4]]
    assert {p.version for p in predictions} == {serving.VERSION}
    assert [(f.id, f.label) for f in log if isinstance(f, Feedback)] == [(i, ">50K") for i in ids]
    assert description["prediction_log"] == {"sample": 1.0, "sinks": ["file"]}


def test_a_shadow_is_logged_with_its_own_version_and_the_primary_answers_unchanged(
    settings: Settings, loaded: loading.LoadedModel, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    shadow = dataclasses.replace(loaded, metadata={**loaded.metadata, "version": "8"})
    app = create_app(logged(settings, sample=1.0, dir=tmp_path / "log"), model=loaded, shadow=shadow)
    with TestClient(app) as client:
        answers = [client.post(routes.PREDICT, json=r).json() for r in records[:10]]
        description = client.get(routes.MODEL).json()
    samples = {  # read once the log is closed: the shadow scores in the background
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(app.metrics.render().decode())
        for s in family.samples
    }
    assert [a["probability"] for a in answers] == loaded.reference.proba(records[:10]).tolist()
    assert {a["model_version"] for a in answers} == {serving.VERSION}
    log = list(predictionlog.read(tmp_path / "log"))
    by_role = {role: [r for r in log if isinstance(r, Prediction) and r.role == role] for role in ("primary", "shadow")}
    assert [r.id for r in by_role["shadow"]] == [r.id for r in by_role["primary"]]
    assert {r.version for r in by_role["shadow"]} == {"8"}
    assert description["shadow"] == {"version": "8", "predictor": "fast"}
    assert samples[("conveyor_shadow_model_info", (("version", "8"),))] == 1
    assert samples[("conveyor_shadow_prediction_score_count", ())] == 10


def test_a_shadow_without_a_log_is_refused_before_serving(settings: Settings, loaded: loading.LoadedModel) -> None:
    with pytest.raises(ConveyorError, match="SHADOW_MODEL_DIR = 'a loaded model' is invalid while the prediction log"):
        create_app(settings, model=loaded, shadow=loaded)


def test_feedback_is_in_the_openapi_document(client: TestClient, settings: Settings) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"][routes.FEEDBACK]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][0] == {"$ref": "#/components/schemas/Feedback"}
    assert body["oneOf"][1]["maxItems"] == settings.serve.max_batch_records
    item = spec["components"]["schemas"]["Feedback"]
    assert item["properties"]["label"]["enum"] == ["<=50K", ">50K"]
    assert set(operation["responses"]) == {"202", "400", "408", "413", "415", "422", "503"}
    assert spec["paths"][routes.PREDICT]["post"]["parameters"][0]["name"] == predictionlog.REQUEST_ID_HEADER


def test_with_the_log_off_nothing_is_written_and_no_writer_runs(
    settings: Settings,
    loaded: loading.LoadedModel,
    records: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert not settings.serve.prediction_log.on
    with TestClient(create_app(logged(settings, sample=1.0), model=loaded)) as client:
        assert client.post(routes.PREDICT, json=records[:5]).status_code == 200
        assert not [t for t in threading.enumerate() if t.name.startswith("prediction-log")]
        assert client.get(routes.MODEL).json()["prediction_log"] == {"sample": 0.0, "sinks": []}
    assert list(tmp_path.iterdir()) == []


def test_a_log_folder_that_cannot_be_made_is_refused_before_serving(
    settings: Settings, loaded: loading.LoadedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    monkeypatch.setenv("PREDICTION_LOG_DIR", str(tmp_path / "taken" / "log"))
    with pytest.raises(ConveyorError, match=r"prediction log folder .*taken/log: cannot be created"):
        create_app(settings, model=loaded)
