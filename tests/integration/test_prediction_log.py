"""The prediction log of a real `conveyor serve` process: its HTTP sink posting CloudEvents batches to a real
collector on 127.0.0.1 (and the same records in its files), a collector that is down or stuck costing requests
nothing, and every record handed to the log accounted for as written or dropped."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conveyor import predictionlog
from conveyor.config import Settings
from conveyor.predictionlog import Feedback, Prediction
from conveyor.serve import loading, routes
from tests.conftest import ROOT, free_port
from tests.support.served import post, serve, stop

pytestmark = pytest.mark.integration


class Collector:
    """An HTTP server on 127.0.0.1 that keeps every POST (its Content-Type and body); `stuck` holds answers back
    until it is released."""

    def __init__(self, stuck: bool = False) -> None:
        self.posts: list[tuple[str, bytes]] = []
        self.release = threading.Event()
        if not stuck:
            self.release.set()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.release.wait(timeout=120)
                collector.posts.append((self.headers["Content-Type"], body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    yield running
    running.stop()


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def metrics(base: str) -> dict[str, float]:
    """The prediction log's series by sample name with its labels, and the predict route's 5xx answers."""
    with urllib.request.urlopen(base + routes.METRICS, timeout=10) as response:
        text = response.read().decode()
    found = {
        name + (f"{{{labels}}}" if labels else ""): float(value)
        for name, labels, value in re.findall(r"^(conveyor_\w+?)(?:\{([^}]*)\})? (\S+)$", text, re.MULTILINE)
        if "prediction_log" in name or "feedback" in name
    }
    found["5xx"] = sum(  # /readyz answers 503 by design while the model loads
        float(v)
        for labels, v in re.findall(r"^conveyor_http_requests_total\{([^}]*)\} (\S+)$", text, re.MULTILINE)
        if 'status="5' in labels and f'route="{routes.PREDICT}"' in labels
    )
    return found


def accounted(base: str, sinks: int, timeout: float = 120.0) -> dict[str, float]:
    """The metrics once every record handed to the log is written or dropped, for each sink (the log has no
    more work); fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        seen = metrics(base)
        handed = sum(v for k, v in seen.items() if k.startswith("conveyor_prediction_log_records_total"))
        handed += seen["conveyor_feedback_records_total"]
        done = sum(
            v
            for k, v in seen.items()
            if k.startswith(("conveyor_prediction_log_written_total", "conveyor_prediction_log_dropped_total"))
        )
        if done == handed * sinks:
            return seen
        assert done < handed * sinks, seen
        assert time.monotonic() < deadline, f"the log never accounted for every record: {seen}"
        time.sleep(0.2)


def test_the_http_sink_posts_cloudevents_batches_and_the_files_hold_the_same_records(
    serve_bundle: Path, tmp_path: Path, collector: Collector, settings: Settings
) -> None:
    process, base = serve(
        serve_bundle,
        tmp_path,
        {"sample": 1.0},
        {"PREDICTION_LOG_DIR": str(tmp_path / "log"), "PREDICTION_LOG_URL": collector.url},
    )
    try:
        records = loading.probe_records(settings, rows=30, seed=3)
        singles = [post(base + routes.PREDICT, r) for r in records[:10]]
        status, batch_id, batch = post(base + routes.PREDICT, records)
        ids = [request_id for _, request_id, _ in singles] + [f"{batch_id}:{i}" for i in range(30)]
        feedback = post(base + routes.FEEDBACK, [{"id": i, "label": ">50K"} for i in ids[::2]])
        seen = accounted(base, sinks=2)
    finally:
        stop(process)
    assert [s for s, _, _ in singles] == [200] * 10 and status == 200 and feedback[0] == 202
    assert seen['conveyor_prediction_log_written_total{sink="http"}'] == 60
    assert seen['conveyor_prediction_log_written_total{sink="file"}'] == 60
    assert {content_type for content_type, _ in collector.posts} == {predictionlog.CLOUDEVENTS_BATCH}
    received = [record for _, body in collector.posts for record in predictionlog.from_cloudevents(body)]
    events = [event for _, body in collector.posts for event in json.loads(body)]
    assert {(e["specversion"], e["type"]) for e in events} == {
        ("1.0", "org.kubeflow.serving.inference.response"),
        ("1.0", "io.conveyor.feedback"),
    }
    assert {e["inferenceservicename"] for e in events} == {settings.model.name}
    predictions = [r for r in received if isinstance(r, Prediction)]
    assert [p.id for p in predictions] == ids
    assert [p.probability for p in predictions[10:]] == [p["probability"] for p in batch["predictions"]]
    assert [p.features for p in predictions[10:]] == records
    assert [(f.id, f.label) for f in received if isinstance(f, Feedback)] == [(i, ">50K") for i in ids[::2]]
    assert list(predictionlog.read(tmp_path / "log")) == received


def test_a_collector_that_is_down_drops_and_counts_and_no_request_fails(
    serve_bundle: Path, tmp_path: Path, settings: Settings
) -> None:
    down = f"http://127.0.0.1:{free_port()}/events"  # nothing listens there
    log = {"sample": 1.0, "http_retries": 1, "http_backoff_s": 0.05, "http_timeout_s": 1, "http_batch_records": 20}
    process, base = serve(serve_bundle, tmp_path, log, {"PREDICTION_LOG_URL": down})
    try:
        records = loading.probe_records(settings, rows=50, seed=4)
        statuses = [post(base + routes.PREDICT, records[i % 50])[0] for i in range(200)]
        statuses += [post(base + routes.PREDICT, records)[0] for _ in range(20)]
        seen = accounted(base, sinks=1)
    finally:
        output = stop(process)
    assert statuses == [200] * 220
    assert seen["5xx"] == 0
    assert seen['conveyor_prediction_log_written_total{sink="http"}'] == 0
    assert seen['conveyor_prediction_log_dropped_total{reason="sink_error"}'] > 0
    assert seen['conveyor_prediction_log_records_total{role="primary"}'] == 200 + 20 * 50
    assert len([line for line in output.splitlines() if "dropping batches until it accepts one" in line]) == 1


def test_a_stuck_collector_fills_the_queue_and_requests_still_succeed(
    serve_bundle: Path, tmp_path: Path, settings: Settings
) -> None:
    stuck = Collector(stuck=True)
    log = {"sample": 1.0, "http_timeout_s": 60, "http_queue_batches": 1, "http_batch_records": 10}
    process, base = serve(serve_bundle, tmp_path, log, {"PREDICTION_LOG_URL": stuck.url})
    try:
        records = loading.probe_records(settings, rows=100, seed=5)
        statuses = [post(base + routes.PREDICT, records)[0] for _ in range(20)]
        # One batch of 10 is held by the stuck POST, one waits in the queue: the other 1,980 records are dropped.
        deadline = time.monotonic() + 120
        while metrics(base)['conveyor_prediction_log_dropped_total{reason="queue_full"}'] < 1980:
            assert time.monotonic() < deadline, metrics(base)
            time.sleep(0.2)
        stuck.release.set()
        seen = accounted(base, sinks=1)
    finally:
        stop(process)
        stuck.stop()
    assert statuses == [200] * 20 and seen["5xx"] == 0
    assert seen['conveyor_prediction_log_dropped_total{reason="queue_full"}'] == 1980
    assert seen['conveyor_prediction_log_written_total{sink="http"}'] == 20
    assert len(stuck.posts) == 2


def test_short_soak_with_the_log_on_keeps_the_folder_under_its_cap(serve_bundle: Path) -> None:
    """The soak script of bench/serve with every request logged, shortened: 8 s at 8 connections, 1 MiB cap."""
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench/serve/soak.py"), "--model-dir", str(serve_bundle)),
            *("--seconds", "8", "--connections", "8", "--warmup", "2", "--prediction-log", "1.0"),
            *("--log-file-bytes", str(2**18), "--log-total-bytes", str(2**20)),
        ],
        env=os.environ | {"CONVEYOR_PARAMS": str(ROOT / "params.yaml")},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    report = json.loads(done.stdout)
    assert report["passed"], report["failures"]
    log = report["prediction_log"]
    assert (report["five_xx"], report["server_counted_5xx"]) == (0, 0)
    assert log["disk_mb"]["max"] <= 1.0 and log["counters"]["deleted_files"] > 0, log
    assert log["counters"]["feedback_records"] > 0 and log["counters"]["written file"] > 0, log


def test_a_shadow_bundle_is_scored_off_the_request_path_and_logged_with_its_own_version(
    serve_bundle: Path, tmp_path: Path, settings: Settings
) -> None:
    """`conveyor serve --shadow-model-dir`: the shadow (here the same model, exported as version 8) is loaded with
    the primary's checks, logged under the same ids as role shadow, and shown by /v1/model."""
    challenger = tmp_path / "challenger"
    shutil.copytree(serve_bundle, challenger)
    metadata = json.loads((challenger / "metadata.json").read_text())
    (challenger / "metadata.json").write_text(json.dumps({**metadata, "version": "8"}))
    process, base = serve(
        serve_bundle,
        tmp_path,
        {"sample": 1.0},
        {"PREDICTION_LOG_DIR": str(tmp_path / "log")},
        "--shadow-model-dir",
        str(challenger),
    )
    try:
        deadline = time.monotonic() + 180
        while (shadow := get(base + routes.MODEL)["shadow"]) is None:  # the shadow loads after the primary
            assert time.monotonic() < deadline, "the shadow never loaded"
            time.sleep(0.5)
        records = loading.probe_records(settings, rows=12, seed=6)
        answers = [post(base + routes.PREDICT, r) for r in records]
        seen = accounted(base, sinks=1)
    finally:
        stop(process)
    assert shadow == {"version": "8", "predictor": "fast"}
    assert {body["model_version"] for _, _, body in answers} == {metadata["version"]}
    assert seen['conveyor_prediction_log_records_total{role="shadow"}'] == 12
    logged = [r for r in predictionlog.read(tmp_path / "log") if isinstance(r, Prediction)]
    primary = [r for r in logged if r.role == "primary"]
    shadowed = [r for r in logged if r.role == "shadow"]
    assert [r.id for r in shadowed] == [r.id for r in primary] == [request_id for _, request_id, _ in answers]
    assert {r.version for r in shadowed} == {"8"}
    assert [r.probability for r in shadowed] == [body["probability"] for _, _, body in answers]  # the same model
