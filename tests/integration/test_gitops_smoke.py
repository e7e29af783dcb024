"""The PostSync smoke Job's program (`python -m conveyor.serve.smoke`) against the real API: `conveyor serve`
on loopback with a real exported model, as the Job reaches the stable Service after a sync."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conveyor.serve import routes
from tests import serving
from tests.conftest import ROOT, free_port, wait_for

pytestmark = pytest.mark.integration

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


@pytest.fixture(scope="module")
def api(serve_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("smoke-api") / "serve.log"
    env = os.environ | {"MODEL_DIR": str(serve_bundle), "CONVEYOR_PARAMS": str(ROOT / "params.yaml")}
    with log.open("w") as out:
        server = subprocess.Popen(
            [CONVEYOR, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(f"http://127.0.0.1:{port}{routes.READY}", timeout=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def smoke(url: str, params: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor.serve.smoke", "--url", url, *extra],
        env=os.environ | {"CONVEYOR_PARAMS": str(params)},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_a_healthy_environment_passes(api: str) -> None:
    done = smoke(api, ROOT / "params.yaml")
    assert done.returncode == 0, done.stderr
    assert "smoke: passed" in done.stdout
    served = f"serving model v{serving.VERSION} (commit {serving.TRAIN_INFO['git_commit'][:7]}, data "
    assert served + f"{serving.TRAIN_INFO['data_version']})" in done.stdout, "it names the model it tested"
    assert "20 predictions, p95" in done.stdout


def test_latency_above_the_limit_fails_the_sync(api: str, tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["deploy"]["smoke"]["max_p95_latency_ms"] = 0.001
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    done = smoke(api, path)
    assert done.returncode == 1
    assert f"smoke: p95 latency of {routes.PREDICT} = " in done.stderr and "ms > 0.001 ms." in done.stderr


def test_an_environment_that_never_gets_ready_fails(tmp_path: Path) -> None:
    done = smoke(f"http://127.0.0.1:{free_port()}", ROOT / "params.yaml", "--ready-timeout", "2")
    assert done.returncode == 1
    assert f"smoke: {routes.READY} was not ready within 2 s" in done.stderr
