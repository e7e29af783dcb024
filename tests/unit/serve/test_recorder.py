"""The prediction log's writer side without HTTP in front: sampling, the bounded queue, the records it builds (ids,
labels, excluded features, the shadow's), the rotating files and their size bound, and the accounting that every
record handed to the log is written or counted as dropped."""

from __future__ import annotations

import dataclasses
import math
import socket
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor import predictionlog
from conveyor.config import PredictionLogSettings, Settings
from conveyor.predictionlog import Feedback, Prediction, Record
from conveyor.serve import loading, routes
from conveyor.serve.metrics import Metrics
from conveyor.serve.recorder import FileSink, HttpSink, Recorder

LABELS = ("<=50K", ">50K")


def log_settings(settings: Settings, **update: Any) -> PredictionLogSettings:
    return settings.serve.prediction_log.model_copy(update=update)


class Collected:
    """A sink that keeps what it is given."""

    name = "file"

    def __init__(self) -> None:
        self.records: list[Record] = []

    def start(self) -> None:
        pass

    def put(self, records: list[Record]) -> None:
        self.records.extend(records)

    def close(self, deadline: float) -> None:
        pass


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def count(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.1, 0.5, 1.0])
def test_the_sampled_share_is_the_configured_fraction(settings: Settings, fraction: float) -> None:
    draws = 40_000
    recorder = Recorder(log_settings(settings, sample=fraction), LABELS, Metrics(routes.ALL), [], seed=12)
    sampled = sum(recorder.sampled() for _ in range(draws))
    spread = 4 * math.sqrt(draws * fraction * (1 - fraction))  # four standard deviations of a binomial count
    assert abs(sampled - draws * fraction) <= spread, sampled


def test_records_carry_row_ids_label_names_and_the_validated_features(settings: Settings) -> None:
    sink = Collected()
    recorder = Recorder(log_settings(settings), LABELS, Metrics(routes.ALL), [sink])
    one, two, three = loading.probe_records(settings, rows=3)
    recorder.offer("req1", "7", [one], [0.25], [0], single=True)
    recorder.offer("req2", "7", [two, three], [0.5, 0.9], [1, 1], single=False)
    recorder.offer("req3", "7", [one], [0.25], [0], single=False)  # a batch of one is still a batch
    assert recorder.drain() == 4
    assert [(r.id, r.label, r.probability, r.role, r.version) for r in sink.records] == [
        ("req1", "<=50K", 0.25, "primary", "7"),
        ("req2:0", ">50K", 0.5, "primary", "7"),
        ("req2:1", ">50K", 0.9, "primary", "7"),
        ("req3:0", "<=50K", 0.25, "primary", "7"),
    ]
    assert sink.records[0].features == one and sink.records[2].features == three
    assert all(r.time.endswith("Z") and len(r.time) == len("2026-12-02T06:00:00.000Z") for r in sink.records)


def test_excluded_features_are_never_written(settings: Settings) -> None:
    sink = Collected()
    recorder = Recorder(log_settings(settings, exclude=["sex", "race"]), LABELS, Metrics(routes.ALL), [sink])
    record = loading.probe_records(settings, rows=1)[0]
    recorder.offer("r", "7", [record], [0.1], [0], single=True)
    recorder.drain()
    (logged,) = sink.records
    assert isinstance(logged, Prediction)
    assert set(logged.features) == set(record) - {"sex", "race"}
    assert {"sex", "race"} <= set(record)  # the request's own record is left whole


def test_a_full_queue_drops_and_counts_whole_requests_and_feedback_has_a_reserve(settings: Settings) -> None:
    metrics = Metrics(routes.ALL)
    sink = Collected()
    recorder = Recorder(log_settings(settings, queue_records=1000), LABELS, metrics, [sink], feedback_reserve=300)
    batch = loading.probe_records(settings, rows=400)
    for i in range(4):  # 400 + 400 fit, the third and fourth batches do not
        recorder.offer(f"r{i}", "7", batch, [0.5] * 400, [0] * 400, single=False)
    assert recorder.waiting == 800
    assert count(metrics, "conveyor_prediction_log_dropped_total", reason="queue_full") == 800
    assert count(metrics, "conveyor_prediction_log_records_total", role="primary") == 1600
    assert recorder.feedback([(f"r0:{i}", ">50K") for i in range(300)])  # past the predictions' bound: reserved
    assert not recorder.feedback([(f"r1:{i}", ">50K") for i in range(201)])  # all or nothing: 201 do not fit
    assert recorder.feedback([(f"r1:{i}", ">50K") for i in range(200)])
    recorder.offer("r5", "7", batch[:1], [0.5], [0], single=True)  # the predictions' bound still holds
    assert recorder.waiting == 1300
    assert recorder.drain() == 1300
    assert recorder.waiting == 0
    assert len(sink.records) == 1300
    assert {r.id.split(":")[0] for r in sink.records if isinstance(r, Prediction)} == {"r0", "r1"}
    assert sum(isinstance(r, Feedback) for r in sink.records) == 500
    assert count(metrics, "conveyor_feedback_records_total") == 500
    recorder.offer("r9", "7", batch, [0.5] * 400, [0] * 400, single=False)  # room again once drained
    assert recorder.waiting == 400


def test_the_shadow_scores_the_same_records_with_its_own_version(
    settings: Settings, loaded: loading.LoadedModel
) -> None:
    shadow = dataclasses.replace(loaded, metadata={**loaded.metadata, "version": "8"})
    metrics = Metrics(routes.ALL)
    sink = Collected()
    recorder = Recorder(log_settings(settings), LABELS, metrics, [sink])
    recorder.shadow = shadow
    records = loading.probe_records(settings, rows=50)
    primary = loaded.predictor.proba(records).tolist()
    recorder.offer("r", "7", records, primary, [0] * 50, single=False)
    recorder.drain()
    shadowed = [r for r in sink.records if isinstance(r, Prediction) and r.role == "shadow"]
    assert [r.id for r in shadowed] == [f"r:{i}" for i in range(50)]
    assert {r.version for r in shadowed} == {"8"}
    assert [r.probability for r in shadowed] == shadow.predictor.proba(records).tolist()
    expected = shadow.decision.record_labels(records, shadow.predictor.proba(records)).tolist()
    assert [r.label for r in shadowed] == [LABELS[y] for y in expected]
    assert count(metrics, "conveyor_shadow_prediction_score_count") == 50
    assert count(metrics, "conveyor_prediction_log_records_total", role="shadow") == 50


def _filler(settings: Settings, n: int) -> list[Record]:
    record = loading.probe_records(settings, rows=1)[0]
    return [Prediction(f"r:{i}", predictionlog.now(), "7", "primary", record, 0.5, "<=50K") for i in range(n)]


def test_files_rotate_at_their_size_and_the_folder_stays_under_its_bound(settings: Settings, tmp_path: Path) -> None:
    config = log_settings(settings, file_max_bytes=2**16, total_max_bytes=4 * 2**16)
    metrics = Metrics(routes.ALL)
    (tmp_path / "00000000T000000.000000Z-older.jsonl").write_bytes(b"x" * 2**16)  # a previous run's file
    sink = FileSink(tmp_path, config, metrics)
    written = _filler(settings, 3000)
    seen = set()
    for start in range(0, 3000, 250):
        sink.put(written[start : start + 250])
        sizes = [p.stat().st_size for p in tmp_path.iterdir()]
        assert sum(sizes) <= config.total_max_bytes and max(sizes) <= config.file_max_bytes
        seen |= {p.name for p in tmp_path.iterdir()}
    sink.close(0)
    files = predictionlog.files(tmp_path)
    assert [p.name for p in files] == sorted(p.name for p in tmp_path.iterdir())
    assert len(files) >= 3 and not (tmp_path / "00000000T000000.000000Z-older.jsonl").exists()
    kept = list(predictionlog.read(tmp_path))
    assert kept == written[-len(kept) :]  # whole lines, the newest kept, oldest first
    deleted_bytes = 2**16 + sum(map(len, map(predictionlog.encode, written))) - sum(p.stat().st_size for p in files)
    assert count(metrics, "conveyor_prediction_log_deleted_bytes_total") == deleted_bytes
    assert count(metrics, "conveyor_prediction_log_deleted_files_total") == len(seen) - len(files)
    assert count(metrics, "conveyor_prediction_log_written_total", sink="file") == 3000


def test_a_folder_that_cannot_be_written_drops_and_counts(settings: Settings, tmp_path: Path) -> None:
    metrics = Metrics(routes.ALL)
    sink = FileSink(tmp_path / "log", log_settings(settings), metrics)
    (tmp_path / "log").rmdir()
    (tmp_path / "log").write_text("a file where the folder was")
    sink.put(_filler(settings, 5))
    assert count(metrics, "conveyor_prediction_log_dropped_total", reason="sink_error") == 5
    assert count(metrics, "conveyor_prediction_log_written_total", sink="file") == 0


def test_records_are_encoded_as_their_field_dicts(settings: Settings) -> None:
    """The server's fast encoding (orjson on the dataclass) writes exactly the record's `asdict`, field order too."""
    record = loading.probe_records(settings, rows=1)[0]
    for logged in (
        Prediction("r:1", predictionlog.now(), "7", "shadow", record, 0.123456789, ">50K"),
        Feedback("r:1", predictionlog.now(), "<=50K"),
    ):
        assert predictionlog.encode(logged) == orjson.dumps(dataclasses.asdict(logged)) + b"\n"
        (event,) = orjson.loads(predictionlog.to_cloudevents([logged], source="s", model="m"))
        assert list(event["data"].items()) == list(dataclasses.asdict(logged).items())


def test_the_http_sink_holds_a_bounded_number_of_batches_and_counts_what_a_dead_collector_costs(
    settings: Settings,
) -> None:
    """Nothing listens on the URL; the sink's thread is not started, so its queue fills as under a slow collector."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/events"
    config = log_settings(settings, http_batch_records=10, http_queue_batches=3, http_timeout_s=2)
    metrics = Metrics(routes.ALL)
    sink = HttpSink(dead, config, metrics, model="m")
    sink.put(_filler(settings, 95))  # 10 batches: 3 wait, 7 are dropped at once
    assert count(metrics, "conveyor_prediction_log_dropped_total", reason="queue_full") == 65
    sink.close(time.monotonic() + 30)  # sends what waits from here, one attempt each: refused
    assert count(metrics, "conveyor_prediction_log_dropped_total", reason="sink_error") == 30
    assert count(metrics, "conveyor_prediction_log_written_total", sink="http") == 0
