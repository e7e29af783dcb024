"""The Open Inference Protocol (V2) in-process: its metadata and probes, inference in both tabular forms equal to
/v1's answers, the same values refused as /v1 with the protocol's error body, the metrics and the prediction log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conveyor import predictionlog
from conveyor.config import Settings
from conveyor.predictionlog import Prediction
from conveyor.serve import loading, routes
from conveyor.serve.app import create_app
from tests import serving
from tests.unit.serve.test_app_log import logged


@pytest.fixture
def client(settings: Settings, loaded: loading.LoadedModel) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=loaded)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def records(serve_split: tuple[pd.DataFrame, pd.DataFrame], settings: Settings) -> list[dict[str, Any]]:
    return serving.records(serve_split[1].head(300), settings)


def infer_path(settings: Settings) -> str:
    return routes.V2_INFER.format(name=settings.model.name)


def per_feature(records: list[dict[str, Any]], settings: Settings, column: bool = False) -> dict[str, Any]:
    """One input per feature, as a KServe client writes it: shape [N] (or [N, 1] with nested data)."""
    inputs = []
    for name, feature in settings.data.features.items():
        values = [r[name] for r in records]
        shape = [len(records), 1] if column else [len(records)]
        data = [[v] for v in values] if column else values
        datatype = "BYTES" if feature.type == "category" else ("INT64" if column else "FP64")
        inputs.append({"name": name, "shape": shape, "datatype": datatype, "data": data})
    return {"inputs": inputs}


def column_ordered(records: list[dict[str, Any]], settings: Settings, nested: bool = True) -> dict[str, Any]:
    rows = [[r[name] for name in settings.data.features] for r in records]
    data = rows if nested else [v for row in rows for v in row]
    shape = [len(records), len(settings.data.features)]
    return {"inputs": [{"name": "input-0", "shape": shape, "datatype": "BYTES", "data": data}]}


def outputs(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {output["name"]: output for output in body["outputs"]}


def test_server_and_model_metadata_and_probes(client: TestClient, settings: Settings) -> None:
    name = settings.model.name
    assert client.get(routes.V2).json() == {"name": "conveyor", "version": "0.1.0", "extensions": []}
    assert client.get(routes.V2_LIVE).json() == {"live": True}
    assert client.get(routes.V2_READY).json() == {"ready": True}
    assert client.get(routes.V2_MODEL_READY.format(name=name)).json() == {"name": name, "ready": True}
    metadata = client.get(routes.V2_MODEL.format(name=name)).json()
    assert metadata["name"] == name and metadata["versions"] == [serving.VERSION]
    assert metadata["platform"] == "sklearn_skops"
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
        (feature, "BYTES" if f.type == "category" else "FP64", [-1]) for feature, f in settings.data.features.items()
    ]
    assert metadata["outputs"] == [
        {"name": "probability", "datatype": "FP64", "shape": [-1]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
    ]


def test_an_unknown_model_is_a_404_with_the_protocol_error(client: TestClient, settings: Settings) -> None:
    for path in (routes.V2_MODEL, routes.V2_MODEL_READY, routes.V2_INFER):
        method = "POST" if path == routes.V2_INFER else "GET"
        response = client.request(method, path.format(name="iris"), json=per_feature([], settings))
        assert response.status_code == 404, path
        assert response.json() == {
            "error": f"model name = \"iris\" is unknown: expected '{settings.model.name}', the one model this "
            "server serves."
        }


def test_both_forms_answer_what_v1_answers(
    client: TestClient, settings: Settings, records: list[dict[str, Any]]
) -> None:
    v1 = client.post(routes.PREDICT, json=records).json()["predictions"]
    names = {0: settings.serve.prediction_log.negative_label, 1: settings.data.positive_label}
    bodies = {
        "per feature, [N]": per_feature(records, settings),
        "per feature, [N, 1] nested, INT64": per_feature(records, settings, column=True),
        "column-ordered, nested": column_ordered(records, settings),
        "column-ordered, flat": column_ordered(records, settings, nested=False),
    }
    for form, body in bodies.items():
        response = client.post(infer_path(settings), json={**body, "id": "req-7"})
        assert response.status_code == 200, (form, response.text)
        answer = response.json()
        assert (answer["model_name"], answer["model_version"], answer["id"]) == (
            settings.model.name,
            serving.VERSION,
            "req-7",
        )
        found = outputs(answer)
        assert found["probability"] == {
            "name": "probability",
            "datatype": "FP64",
            "shape": [len(records)],
            "data": [p["probability"] for p in v1],
        }, form
        assert found["label"]["datatype"] == "BYTES" and found["label"]["shape"] == [len(records)]
        assert found["label"]["data"] == [names[p["label"]] for p in v1], form


def test_the_id_is_the_request_id_unless_given_and_outputs_can_be_chosen(
    client: TestClient, settings: Settings, records: list[dict[str, Any]]
) -> None:
    response = client.post(infer_path(settings), json=per_feature(records[:2], settings))
    assert response.json()["id"] == response.headers[predictionlog.REQUEST_ID_HEADER]
    body = {**column_ordered(records[:2], settings), "outputs": [{"name": "label"}]}
    assert [o["name"] for o in client.post(infer_path(settings), json=body).json()["outputs"]] == ["label"]


def _bad(record: dict[str, Any], settings: Settings) -> dict[str, tuple[dict[str, Any] | bytes, str]]:
    """name -> (body, the start of the error sentence)."""
    good = per_feature([record, record], settings)
    inputs = good["inputs"]
    age = next(i for i, t in enumerate(inputs) if t["name"] == "age")
    sex = next(i for i, t in enumerate(inputs) if t["name"] == "sex")

    def changed(i: int, **fields: Any) -> dict[str, Any]:
        return {"inputs": [{**t, **fields} if j == i else t for j, t in enumerate(inputs)]}

    width = len(settings.data.features)
    return {
        "out of range": (
            changed(age, data=[39, 200]),
            f"inputs[{age}].data[1] (age) = 200 is invalid: expected an integer from 17 to 90",
        ),
        "a string for a number": (changed(age, data=["39", 39]), f'inputs[{age}].data[0] (age) = "39" is invalid'),
        "unknown category": (
            changed(sex, data=["Male", "M"]),
            f'inputs[{sex}].data[1] (sex) = "M" is invalid: expected one of',
        ),
        "wrong datatype": (
            changed(age, datatype="BYTES"),
            f'inputs[{age}].datatype = "BYTES" is invalid: expected FP64',
        ),
        "category as a number": (
            changed(sex, datatype="FP64"),
            f'inputs[{sex}].datatype = "FP64" is invalid: expected BYTES',
        ),
        "shape and data disagree": (changed(age, shape=[3]), f"inputs[{age}].data is invalid: expected 3 elements"),
        "inputs of different N": (
            changed(sex, shape=[3], data=["Male"] * 3),
            f"inputs[{sex}].shape = [3] is invalid: expected the N of every other input (2)",
        ),
        "nested data of the wrong shape": (
            changed(age, shape=[2, 1], data=[[39, 40]]),
            f"inputs[{age}].data is invalid: expected 2 elements, flat or as 2 rows of 1",
        ),
        "missing feature": (
            {"inputs": [t for t in inputs if t["name"] != "sex"]},
            "input 'sex' is missing: expected a BYTES tensor",
        ),
        "repeated feature": ({"inputs": [*inputs, inputs[sex]]}, f'inputs[{width}].name = "sex" is repeated'),
        "unknown input beside features": (
            {"inputs": [*inputs, {**inputs[0], "name": "zodiac"}]},
            f'inputs[{width}].name = "zodiac" is unknown',
        ),
        "empty batch": (
            changed(age, shape=[0], data=[]),
            f"inputs[{age}].shape = [0] is invalid: expected [N] or [N, 1] with N from 1",
        ),
        "column-ordered, wrong width": (
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": [1, 2, 3]}]},
            "inputs[0].shape = [1,3] is invalid: expected [N, 13]",
        ),
        "column-ordered, value": (
            column_ordered([{**record, "age": 5}], settings),
            "inputs[0].data[0][0] (age) = 5 is invalid: expected an integer from 17 to 90",
        ),
        "no inputs": ({"id": "1"}, "inputs is invalid: expected an array of input tensors"),
        "id not a string": ({**good, "id": 42}, "id = 42 is invalid: expected a string"),
        "unknown output": ({**good, "outputs": [{"name": "logits"}]}, 'outputs[0] = {"name":"logits"} is invalid'),
        "unknown field": ({**good, "inputz": []}, "inputz = [] is unknown"),
        "not an object": ([good], "body = "),
        "not JSON": (b'{"inputs": ', "body = "),
    }


JSON_TYPE = {"Content-Type": "application/json"}


def test_bad_requests_are_400s_with_one_sentence(
    client: TestClient, settings: Settings, records: list[dict[str, Any]]
) -> None:
    for name, (body, sentence) in _bad(records[0], settings).items():
        kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
        response = client.post(infer_path(settings), headers=JSON_TYPE, **kwargs)
        assert response.status_code == 400, (name, response.text)
        assert list(response.json()) == ["error"], name
        assert response.json()["error"].startswith(sentence), (name, response.json())
    large = b" " * (settings.serve.max_body_bytes + 1)
    too_large = client.post(infer_path(settings), headers=JSON_TYPE, content=large)
    assert too_large.status_code == 413 and list(too_large.json()) == ["error"]
    as_text = client.post(infer_path(settings), headers={"Content-Type": "text/plain"}, content=b"{}")
    assert as_text.status_code == 415 and list(as_text.json()) == ["error"]


def test_v1_and_v2_refuse_the_same_values_with_the_same_expectation(
    client: TestClient, settings: Settings, records: list[dict[str, Any]]
) -> None:
    record = records[0]
    for name, value in [
        ("age", 16),
        ("age", 37.5),
        ("age", True),
        ("capital_gain", -1),
        ("race", "Martian"),
        ("sex", None),
    ]:
        v1 = client.post(routes.PREDICT, json={**record, name: value})
        v2 = client.post(infer_path(settings), json=column_ordered([{**record, name: value}], settings))
        assert (v1.status_code, v2.status_code) == (422, 400), (name, value)
        expected = v1.json()["problems"][0]["expected"]
        assert v2.json()["error"].endswith(f"is invalid: expected {expected}."), (name, value, v2.json())
    for name, value in [("age", 37.0), ("workclass", None)]:  # what /v1 accepts, V2 accepts
        v1 = client.post(routes.PREDICT, json={**record, name: value}).json()
        v2 = client.post(infer_path(settings), json=column_ordered([{**record, name: value}], settings)).json()
        assert outputs(v2)["probability"]["data"] == [v1["probability"]]


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(client.get(routes.METRICS).text)
        for sample in family.samples
    }


def test_requests_are_counted_under_their_route(
    client: TestClient, settings: Settings, records: list[dict[str, Any]]
) -> None:
    path = infer_path(settings)
    client.post(path, json=per_feature(records[:3], settings))
    client.post(path, json={"inputs": []})
    client.post(routes.V2_INFER.format(name="iris"), json={})
    client.get(routes.V2_READY)
    samples = _samples(client)

    def count(**labels: str) -> float:
        return samples.get(("conveyor_http_requests_total", tuple(sorted(labels.items()))), 0.0)

    assert count(route=path, method="POST", status="200") == 1
    assert count(route=path, method="POST", status="400") == 1
    assert count(route="other", method="POST", status="404") == 1
    assert count(route=routes.V2_READY, method="GET", status="200") == 1
    assert samples[("conveyor_prediction_score_count", ())] == 3


def test_sampled_v2_predictions_go_to_the_prediction_log(
    settings: Settings,
    loaded: loading.LoadedModel,
    records: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREDICTION_LOG_DIR", str(tmp_path / "log"))
    with TestClient(create_app(logged(settings, sample=1.0), model=loaded)) as client:
        response = client.post(infer_path(settings), json={**column_ordered(records[:3], settings), "id": "mine"})
    request_id = response.headers[predictionlog.REQUEST_ID_HEADER]
    logged_records = [r for r in predictionlog.read(tmp_path / "log") if isinstance(r, Prediction)]
    assert [p.id for p in logged_records] == [f"{request_id}:{row}" for row in range(3)]
    assert [p.probability for p in logged_records] == outputs(response.json())["probability"]["data"]
    assert [p.label for p in logged_records] == outputs(response.json())["label"]["data"]
    assert [p.features for p in logged_records] == records[:3]


def test_v2_ready_is_503_until_the_model_is_loaded(
    serve_bundle: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = threading.Event()
    real_load = loading.load

    def held_load(folder: Path, settings: Settings) -> loading.LoadedModel:
        go.wait(timeout=60)
        return real_load(folder, settings)

    monkeypatch.setattr(loading, "load", held_load)
    name = settings.model.name
    with TestClient(create_app(settings, serve_bundle)) as client:
        for path in (routes.V2_READY, routes.V2_MODEL.format(name=name), routes.V2_MODEL_READY.format(name=name)):
            waiting = client.get(path)
            assert waiting.status_code == 503 and "still loading" in waiting.json()["error"], path
        assert client.post(infer_path(settings), json={}).status_code == 503
        assert client.get(routes.V2_LIVE).status_code == 200
        go.set()
        deadline = time.monotonic() + 120
        while client.get(routes.V2_READY).status_code != 200:
            assert time.monotonic() < deadline, "the model never became ready"
            time.sleep(0.1)
