"""A KServe V2 client against a real `conveyor serve`: requests written by hand from the Open Inference Protocol
(kserve/open-inference-protocol, specification/protocol/inference_rest.md: "Inference Request JSON Object",
"Tensor Data") for the whole holdout get the probabilities /v1/predict gives, in both tabular forms."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conveyor.config import Settings
from conveyor.serve import routes
from tests import serving
from tests.conftest import wait_for
from tests.integration.test_serve_http import Server, post, start

pytestmark = pytest.mark.integration

BATCH = 1000  # serve.max_batch_records


@pytest.fixture(scope="module")
def server(serve_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start(serve_bundle, tmp_path_factory.mktemp("serve-v2-cwd"))
    try:
        wait_for(running.base + routes.READY, timeout=180)
        yield running
    finally:
        running.stop()


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _value(value: Any) -> Any:
    """A pandas cell as JSON: missing is null (the protocol has no missing element; /v1's null is accepted)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def test_a_hand_written_v2_client_gets_the_v1_probabilities_for_the_holdout(
    server: Server, serve_split: tuple[pd.DataFrame, pd.DataFrame], settings: Settings
) -> None:
    holdout = serve_split[1]
    model = settings.model.name
    assert get(f"{server.base}/v2/health/ready") == (200, {"ready": True})
    status, metadata = get(f"{server.base}/v2/models/{model}")
    assert status == 200
    inputs = metadata["inputs"]  # what a KServe client reads before it writes a request
    assert [i["name"] for i in inputs] == list(settings.data.features)
    for start_row in range(0, len(holdout), BATCH):
        rows = holdout.iloc[start_row : start_row + BATCH]
        expected = [
            p["probability"]
            for p in post(server.base + routes.PREDICT, serving.records(rows, settings))[1]["predictions"]
        ]
        # One input per feature: {"name", "shape": [N], "datatype", "data": [...]} (the spec's $request_input).
        by_feature = {
            "id": f"holdout-{start_row}",
            "inputs": [
                {
                    "name": i["name"],
                    "shape": [len(rows)],
                    "datatype": i["datatype"],
                    "data": [_value(v) for v in rows[i["name"]]],
                }
                for i in inputs
            ],
            "outputs": [{"name": "probability"}],
        }
        # One input of shape [N, n_features], "in their natural multi-dimensional representation" (Tensor Data).
        columns = [i["name"] for i in inputs]
        column_ordered = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(rows), len(columns)],
                    "datatype": "BYTES",
                    "data": [[_value(v) for v in row] for row in rows[columns].itertuples(index=False)],
                }
            ]
        }
        for form, body in (("one input per feature", by_feature), ("column-ordered", column_ordered)):
            status, answer = post(f"{server.base}/v2/models/{model}/infer", body)
            assert status == 200, (form, answer)
            assert answer["model_name"] == model and answer["model_version"] == serving.VERSION
            probability = next(o for o in answer["outputs"] if o["name"] == "probability")
            assert probability["datatype"] == "FP64" and probability["shape"] == [len(rows)]
            assert probability["data"] == expected, (form, start_row)
        assert answer["id"]  # no id sent: the server's request id
    status, error = post(f"{server.base}/v2/models/{model}/infer", {"inputs": []})
    assert status == 400 and list(error) == ["error"]
