"""A real `conveyor serve` process for the integration tests, and plain HTTP to it: the prediction log's, the
monitor's and the dashboard's tests all send their traffic through the server as a client would."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from conveyor import predictionlog
from conveyor.serve import routes
from tests.conftest import CONVEYOR, ROOT, free_port, wait_for


def serve(
    bundle: Path, tmp_path: Path, log: dict[str, Any], env: dict[str, str], *options: str, params: Path = ROOT
) -> tuple[subprocess.Popen[str], str]:
    """`conveyor serve` on `bundle` with `params`' params.yaml, its serve.prediction_log changed by `log`; ready."""
    settings = yaml.safe_load((params / "params.yaml").read_text())
    settings["serve"]["prediction_log"].update(log)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    port = free_port()
    process = subprocess.Popen(
        [CONVEYOR, "serve", "--port", str(port), *options],
        cwd=tmp_path,
        env=os.environ | {"MODEL_DIR": str(bundle), "CONVEYOR_PARAMS": str(tmp_path / "params.yaml"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + routes.READY, timeout=180)
    except AssertionError:
        stop(process)
        raise
    return process, base


def stop(process: subprocess.Popen[str]) -> str:
    """Stop the server (SIGTERM: the log's writer drains first) and return what it printed."""
    os.killpg(process.pid, signal.SIGTERM)
    return process.communicate(timeout=60)[0]


def post(url: str, payload: Any, request_id: str | None = None) -> tuple[int, str, Any]:
    """(status, x-request-id, body)."""
    headers = {"Content-Type": "application/json"}
    if request_id is not None:
        headers[predictionlog.REQUEST_ID_HEADER] = request_id
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers[predictionlog.REQUEST_ID_HEADER], json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers[predictionlog.REQUEST_ID_HEADER], json.loads(exc.read())


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a client sends them: a missing value as null."""
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def replay(base: str, frame: pd.DataFrame, labels: list[str] | None, prefix: str, batch: int = 500) -> list[float]:
    """`frame` as batches of predict requests with request ids `<prefix>-<n>`, then (with `labels`) every row's
    true label posted as feedback; the served probabilities, in row order."""
    probabilities: list[float] = []
    ids: list[str] = []
    rows = records(frame)
    for start in range(0, len(rows), batch):
        request_id = f"{prefix}-{start // batch}"
        status, echoed, body = post(base + routes.PREDICT, rows[start : start + batch], request_id)
        assert status == 200 and echoed == request_id, body
        probabilities += [p["probability"] for p in body["predictions"]]
        ids += [predictionlog.row_id(request_id, row) for row in range(len(body["predictions"]))]
    if labels is not None:
        for start in range(0, len(ids), batch):
            items = [
                {"id": i, "label": label}
                for i, label in zip(ids[start : start + batch], labels[start : start + batch], strict=True)
            ]
            status, _, body = post(base + routes.FEEDBACK, items)
            assert status == 202, body
    return probabilities
