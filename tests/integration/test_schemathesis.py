"""Schemathesis against the OpenAPI document a real `conveyor serve` (uvicorn on 127.0.0.1) serves, /v1 and /v2:
every operation, every phase (the documented examples, coverage, fuzzing, stateful links), valid and invalid data,
every built-in check, a bounded deterministic run."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.serve import routes
from tests.conftest import wait_for
from tests.integration.test_serve_http import Server, start

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
MAX_EXAMPLES = 50  # per operation and phase: about 1,500 requests, 15 s here
# schemathesis.toml: all checks on, with one exception for one operation: the protocol's tensors tie fields together
# in ways JSON Schema cannot say (shape [N] and N elements of data, one input per feature, every input's N alike),
# so a body valid against the schema may still be refused with 400.
CONFIG = f"""\
checks.enabled = true

[[operations]]
include-path = "{routes.V2_INFER}"
checks.positive_data_acceptance.expected-statuses = ["200", "400"]
"""


@pytest.fixture(scope="module")
def server(serve_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """With a prediction log, so that feedback is accepted (without one it is a documented 503, which
    schemathesis counts as a server error) and sampled V2 predictions are logged too."""
    cwd = tmp_path_factory.mktemp("schemathesis-cwd")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PREDICTION_LOG_DIR", str(cwd / "prediction-log"))
        running = start(serve_bundle, cwd)
    try:
        wait_for(running.base + routes.READY, timeout=180)
        yield running
    finally:
        running.stop()


def test_the_openapi_document_covers_v1_and_v2(server: Server) -> None:
    with urllib.request.urlopen(server.base + "/openapi.json", timeout=10) as response:
        paths = json.loads(response.read())["paths"]
    v1 = {routes.PREDICT, routes.FEEDBACK, routes.MODEL, routes.READY}
    v2 = {routes.V2, routes.V2_LIVE, routes.V2_READY, routes.V2_MODEL, routes.V2_MODEL_READY, routes.V2_INFER}
    assert v1 | v2 <= set(paths)


def test_schemathesis_finds_nothing(server: Server, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    done = subprocess.run(
        [
            SCHEMATHESIS,
            "--config-file",
            str(config),
            "run",
            server.base + "/openapi.json",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--generation-deterministic",
            "--workers",
            "1",
            "--request-timeout",
            "30",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    assert "Selected: 12/12" in done.stdout and "No issues found" in done.stdout, done.stdout[-5000:]
