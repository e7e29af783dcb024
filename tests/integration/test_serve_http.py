"""`conveyor serve` as a real uvicorn process on loopback: its answers equal the in-process Pipeline's, a short
soak of mixed valid and invalid traffic gets no 5xx, it writes nothing to its working or model directory, and a
missing model keeps it alive but unready with one log line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor.config import Settings
from conveyor.serve import loading, routes
from tests import serving
from tests.conftest import CONVEYOR, ROOT, free_port, wait_for

pytestmark = pytest.mark.integration


@dataclass
class Server:
    process: subprocess.Popen[str]
    base: str
    cwd: Path

    def stop(self) -> str:
        """Stop the server; returns what it logged."""
        os.killpg(self.process.pid, signal.SIGTERM)
        out, _ = self.process.communicate(timeout=60)
        return out


def start(model_dir: Path, cwd: Path, *options: str) -> Server:
    port = free_port()
    cwd.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"MODEL_DIR": str(model_dir), "CONVEYOR_PARAMS": str(ROOT / "params.yaml")}
    process = subprocess.Popen(
        [CONVEYOR, "serve", "--port", str(port), *options],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return Server(process, f"http://127.0.0.1:{port}", cwd)


def post(url: str, payload: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def server(serve_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start(serve_bundle, tmp_path_factory.mktemp("serve-cwd"))
    try:
        wait_for(running.base + routes.READY, timeout=180)
        yield running
    finally:
        running.stop()


def test_http_answers_equal_the_in_process_pipeline(
    server: Server, serve_bundle: Path, serve_split: tuple[pd.DataFrame, pd.DataFrame], settings: Settings
) -> None:
    records = serving.records(serve_split[1].head(200), settings)
    reference = loading.load(serve_bundle, settings).reference.proba(records)
    singles = [post(server.base + routes.PREDICT, r) for r in records[:25]]
    assert [status for status, _ in singles] == [200] * 25
    assert [body["probability"] for _, body in singles] == reference[:25].tolist()
    status, batch = post(server.base + routes.PREDICT, records)
    assert status == 200
    assert np.array_equal([p["probability"] for p in batch["predictions"]], reference)


def _predict_5xx(server: Server) -> float:
    with urllib.request.urlopen(server.base + routes.METRICS, timeout=10) as response:
        text = response.read().decode()
    route = f'route="{routes.PREDICT}"'
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("conveyor_http_requests_total{") and route in line and 'status="5' in line
    )


def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(server: Server) -> None:
    port = int(server.base.rsplit(":", 1)[1])
    head = f"POST {routes.PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    for sent in (b"", b'{"age": 3'):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(head.encode() + sent)
            time.sleep(0.3)
    time.sleep(1)
    assert _predict_5xx(server) == 0
    assert urllib.request.urlopen(server.base + routes.HEALTH, timeout=10).status == 200


def test_short_soak_gets_no_5xx_and_every_answer_right(serve_bundle: Path) -> None:
    """The soak script of bench/serve, shortened: 8 s at 8 connections against its own server."""
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench/serve/soak.py"), "--model-dir", str(serve_bundle)),
            *("--seconds", "8", "--connections", "8", "--warmup", "2"),
        ],
        env=os.environ | {"CONVEYOR_PARAMS": str(ROOT / "params.yaml")},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    report = json.loads(done.stdout)
    assert (report["five_xx"], report["server_counted_5xx"]) == (0, 0), report["cases"]
    assert (report["failed_valid"], report["wrong_invalid"]) == (0, 0), report["cases"]
    assert all(case["sent"] > 0 for case in report["cases"].values()), report["cases"]
    assert report["valid_requests"] > 0


def test_the_server_writes_nothing_to_its_working_or_model_directory(
    serve_bundle: Path, tmp_path: Path, settings: Settings
) -> None:
    before = snapshot(serve_bundle)
    running = start(serve_bundle, tmp_path / "cwd")
    try:
        wait_for(running.base + routes.READY, timeout=180)
        assert post(running.base + routes.PREDICT, loading.probe_records(settings, rows=3))[0] == 200
    finally:
        running.stop()
    assert list((tmp_path / "cwd").iterdir()) == []
    assert snapshot(serve_bundle) == before


def test_missing_model_exits_2_naming_the_bundle_and_how_to_make_one(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-models"
    env = os.environ | {"MODEL_DIR": str(missing), "CONVEYOR_PARAMS": str(ROOT / "params.yaml")}
    done = subprocess.run([CONVEYOR, "serve"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and done.stdout == ""
    said = done.stderr.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(f"error: no model bundle at {missing / 'model.skops'}: ")
    assert "`make run`" in said[0] and "`conveyor export --version N`" in said[0] and "--wait-for-model" in said[0]


def test_waiting_for_a_missing_model_keeps_the_server_alive_unready_with_one_log_line(tmp_path: Path) -> None:
    running = start(tmp_path / "no-such-models", tmp_path / "cwd", "--wait-for-model")
    try:
        wait_for(running.base + routes.HEALTH, timeout=180)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(running.base + routes.READY, timeout=5)
                raise AssertionError("/readyz answered 200 without a model")
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                reason = json.loads(exc.read())["error"]
            if "still loading" not in reason or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        status, body = post(running.base + routes.PREDICT, {})
    finally:
        log = running.stop()
    assert "the model directory does not exist" in reason
    assert status == 503 and "not ready" in body["error"]
    assert len([line for line in log.splitlines() if "model not loaded" in line]) == 1, log


def test_a_swapped_model_file_keeps_the_real_server_unready_naming_the_file_and_both_digests(
    serve_bundle: Path, serve_split: tuple[pd.DataFrame, pd.DataFrame], settings: Settings, tmp_path: Path
) -> None:
    """Issue 13, defect 3, as it was found: a different valid skops Pipeline (a DummyClassifier) in the gated bundle
    was served as the gated version. Now the digest metadata.json recorded at export refuses it."""
    import shutil

    import skops.io
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import Pipeline

    from conveyor import bundle
    from conveyor.data import frames

    folder = tmp_path / "models"
    shutil.copytree(serve_bundle, folder)
    x, y = frames.features_and_target(serve_split[0], settings)
    skops.io.dump(Pipeline([("model", DummyClassifier())]).fit(x, y), folder / bundle.MODEL_FILE)
    expected = bundle.read_metadata(folder)[bundle.FILES_KEY][bundle.MODEL_FILE]
    found = bundle.digests(folder)[bundle.MODEL_FILE]
    running = start(folder, tmp_path / "cwd")
    try:
        wait_for(running.base + routes.HEALTH, timeout=180)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(running.base + routes.READY, timeout=5)
                raise AssertionError("/readyz answered 200 with a model file that is not the exported one")
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                reason = json.loads(exc.read())["error"]
            if "still loading" not in reason or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        status, _ = post(running.base + routes.PREDICT, serving.records(serve_split[1].head(1), settings)[0])
    finally:
        log = running.stop()
    assert f"{folder / bundle.MODEL_FILE}: found {found}, expected {expected} (metadata.json)" in reason
    assert status == 503
    assert len([line for line in log.splitlines() if "model not loaded" in line]) == 1, log
