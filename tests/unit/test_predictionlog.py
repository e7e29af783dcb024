"""The prediction log's records: round trips through JSON Lines and CloudEvents, and bad records named."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from conveyor import predictionlog as log
from conveyor.errors import ConveyorError

PREDICTION = log.Prediction(
    id="abc:3",
    time="2026-12-02T06:00:00.000Z",
    version="7",
    role="primary",
    features={"age": 39, "sex": "Male"},
    probability=0.25,
    label="<=50K",
)
FEEDBACK = log.Feedback(id="abc:3", time="2026-12-02T07:00:00.000Z", label=">50K")


def test_records_round_trip_through_files_oldest_first(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2026-12-02T07.jsonl").write_bytes(log.encode(FEEDBACK))
    (tmp_path / "a.jsonl").write_bytes(log.encode(PREDICTION))
    assert list(log.read(tmp_path)) == [PREDICTION, FEEDBACK]


def test_a_line_cut_short_at_the_end_is_skipped_but_one_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(log.encode(PREDICTION) + b'{"kind": "predic')
    assert list(log.read(tmp_path)) == [PREDICTION]
    path.write_bytes(b'{"kind": "predic\n' + log.encode(PREDICTION))
    with pytest.raises(ConveyorError, match=r"x\.jsonl line 1"):
        list(log.read(tmp_path))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "guess"}, "field 'kind' is 'guess'"),
        ({"role": "canary"}, "field 'role' is 'canary'"),
        ({"probability": "high"}, "field 'probability' is 'high', expected a number"),
        ({"features": [1, 2]}, "field 'features' is \\[1, 2\\], expected a JSON object"),
        ({"id": None}, "field 'id' is None, expected a string"),
    ],
)
def test_a_bad_record_names_the_field_and_the_value(change: dict, message: str) -> None:
    raw = orjson.loads(log.encode(PREDICTION)) | change
    with pytest.raises(ConveyorError, match=message):
        log.decode(raw)


def test_cloudevents_carry_kserves_attributes_and_round_trip() -> None:
    body = log.to_cloudevents([PREDICTION, FEEDBACK], source="conveyor-abc", model="conveyor")
    events = orjson.loads(body)
    assert [e["type"] for e in events] == ["org.kubeflow.serving.inference.response", "io.conveyor.feedback"]
    assert {e["specversion"] for e in events} == {"1.0"}
    assert events[0]["inferenceservicename"] == "conveyor"
    assert log.from_cloudevents(body) == [PREDICTION, FEEDBACK]


@pytest.mark.parametrize(
    ("body", "message"), [(b"{", "not JSON"), (b"{}", "a dict, expected an array"), (b"[{}]", "CloudEvent 0")]
)
def test_a_bad_cloudevents_batch_is_refused_in_one_sentence(body: bytes, message: str) -> None:
    with pytest.raises(ConveyorError, match=message):
        log.from_cloudevents(body)


def test_a_batch_row_id_names_its_row() -> None:
    assert log.row_id("abc", None) == "abc"
    assert log.row_id("abc", 3) == "abc:3"
