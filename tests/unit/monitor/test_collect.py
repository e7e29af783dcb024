"""The collector on 127.0.0.1: CloudEvents batches and KServe binary-mode events in, the log read back with
predictionlog.read; 400, 413 and 415 with one sentence; files rotate by size."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from conveyor import predictionlog
from conveyor.monitor.collect import Collector
from conveyor.predictionlog import Feedback, Prediction

RECORDS = [
    Prediction("r-1", "2026-01-10T12:00:00.000Z", "3", "primary", {"age": 40, "sex": "Male"}, 0.8, ">50K"),
    Prediction("r-1", "2026-01-10T12:00:00.000Z", "4", "shadow", {"age": 40, "sex": "Male"}, 0.7, ">50K"),
    Feedback("r-1", "2026-01-10T13:00:00.000Z", "<=50K"),
]
KSERVE = {
    "Ce-Id": "a1",
    "Ce-Type": "org.kubeflow.serving.inference.request",
    "Ce-Source": "http://localhost:9081/",
    "Ce-Specversion": "1.0",
    "Ce-Inferenceservicename": "sklearn-iris",
    "Ce-Component": "predictor",
    "Ce-Endpoint": "default",
}


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[Collector, Path]]:
    server = Collector(
        ("127.0.0.1", 0), tmp_path / "log", max_body_bytes=4096, max_file_bytes=600, max_total_bytes=10**6
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, tmp_path / "log"
    server.shutdown()
    server.server_close()


def post(server: Collector, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    connection.request("POST", "/", body=body, headers=headers)
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response.status, answer


def test_batches_and_binary_events_are_read_back(collector: tuple[Collector, Path]) -> None:
    server, folder = collector
    batch = predictionlog.to_cloudevents(RECORDS, source="test", model="conveyor")
    assert post(server, batch, {"Content-Type": predictionlog.CLOUDEVENTS_BATCH}) == (200, {"stored": 3})
    one = orjson.dumps({**RECORDS[2].__dict__, "id": "r-2"})
    assert post(server, one, {"Content-Type": "application/json", **KSERVE}) == (200, {"stored": 1})
    assert list(predictionlog.read(folder)) == [*RECORDS, Feedback("r-2", RECORDS[2].time, "<=50K")]


def test_kserve_payloads_are_kept_raw_beside_the_log(collector: tuple[Collector, Path]) -> None:
    server, folder = collector
    assert (
        post(server, b'{"instances": [[6.8, 2.8, 4.8, 1.4]]}', {"Content-Type": "application/json", **KSERVE})[0] == 200
    )
    assert list(predictionlog.read(folder)) == []  # not one of our records: the monitor does not read it
    (raw,) = folder.glob("*.events")
    kept = orjson.loads(raw.read_bytes())
    assert kept["data"] == {"instances": [[6.8, 2.8, 4.8, 1.4]]}
    assert kept["attributes"]["ce-inferenceservicename"] == "sklearn-iris"


def test_files_rotate_by_size_and_stay_readable(collector: tuple[Collector, Path]) -> None:
    server, folder = collector
    for _ in range(4):
        post(server, predictionlog.to_cloudevents(RECORDS, "t", "m"), {"Content-Type": predictionlog.CLOUDEVENTS_BATCH})
    assert len(predictionlog.files(folder)) > 1
    assert len(list(predictionlog.read(folder))) == 12


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (b"[1]", {"Content-Type": "text/plain"}, 415, "Content-Type 'text/plain' is not accepted"),
        (b"{}", {"Content-Type": "application/json"}, 415, "with Ce-Id, Ce-Type, Ce-Source and Ce-Specversion"),
        (
            b"x" * 5000,
            {"Content-Type": predictionlog.CLOUDEVENTS_BATCH},
            413,
            "the body has 5000 bytes, over the limit of 4096",
        ),
        (b"not json", {"Content-Type": predictionlog.CLOUDEVENTS_BATCH}, 400, "The CloudEvents batch is not JSON"),
        (
            b'[{"data": {"kind": "prediction", "role": "primary", "id": 1}}]',
            {"Content-Type": predictionlog.CLOUDEVENTS_BATCH},
            400,
            "CloudEvent 0: field 'id' is 1, expected a string",
        ),
        (b"{oops", {"Content-Type": "application/json", **KSERVE}, 400, "the event's body is not JSON"),
    ],
)
def test_refused_bodies_get_one_sentence_and_store_nothing(
    collector: tuple[Collector, Path], body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    server, folder = collector
    answered, payload = post(server, body, headers)
    assert answered == status and says in payload["error"]
    assert payload["error"].endswith(".") and list(predictionlog.read(folder)) == []


def test_the_oldest_files_go_past_the_total_limit(collector: tuple[Collector, Path]) -> None:
    server, folder = collector
    server.records.max_total_bytes = 2500  # each batch here (~700 bytes) closes its file: about three files fit
    batch = predictionlog.to_cloudevents(RECORDS, "t", "m")
    for _ in range(8):
        assert post(server, batch, {"Content-Type": predictionlog.CLOUDEVENTS_BATCH})[0] == 200
    files = predictionlog.files(folder)
    assert len(files) > 1 and sum(f.stat().st_size for f in files) <= 2500
    kept = list(predictionlog.read(folder))
    assert 3 <= len(kept) < 8 * 3 and len(kept) % 3 == 0  # whole files of the newest batches; the oldest went


def test_a_volume_that_refuses_the_write_is_503_and_acknowledges_nothing(collector: tuple[Collector, Path]) -> None:
    server, folder = collector
    folder.rmdir()
    folder.write_text("")  # the volume is gone: a file stands where the folder was, even root cannot write into it
    batch = predictionlog.to_cloudevents(RECORDS, "t", "m")
    status, answer = post(server, batch, {"Content-Type": predictionlog.CLOUDEVENTS_BATCH})
    assert status == 503 and answer["error"].startswith("the log folder refused the write (Not a directory)")
