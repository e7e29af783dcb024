"""The serving image, built for real with podman and run as a cluster runs it: read-only root filesystem,
non-root user, no capabilities, published on loopback only.

The build context is a temporary folder with the files the Dockerfile copies and a model bundle fitted on the
real training split and written by the real export code. The container's answers must equal the in-process
model's (`conveyor.bundle.load` on the same folder) on the whole holdout. `make image-test` installs podman
and makes the local base image (scripts/ci/setup-podman.sh) so CI never skips this.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conveyor.bundle import load as load_bundle
from conveyor.config import Settings, load_settings
from conveyor.serve import routes
from tests import serving
from tests.conftest import ROOT, free_port, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    # One worker builds the image and runs the container (module fixtures) for all of them; split over xdist
    # workers, each would build it again.
    pytest.mark.xdist_group("image"),
    pytest.mark.skipif(
        shutil.which("podman") is None,
        reason="podman is not installed; `make image-test` installs it with scripts/ci/setup-podman.sh",
    ),
]

BUILD = ROOT / "scripts" / "ci" / "build_image.py"
PIPELINE_ONLY = {"mlflow", "great-expectations", "evidently", "dvc", "fairlearn", "hera"}
UID = "10001"
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Bundle:
    context: Path
    settings: Settings
    holdout: list[dict[str, Any]]
    expected: np.ndarray  # the in-process model's positive-class probabilities on `holdout`


@dataclass(frozen=True)
class Container:
    name: str
    url: str


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return done


def _build_inputs() -> list[str]:
    """What the build may see: .dockerignore's allow-list."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line[1:].strip("/") for line in lines if line.startswith("!")]


def _lock_names(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {line.split("==")[0].lower().replace("_", "-") for line in lines if "==" in line}


def _post(url: str, body: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, serve_split: tuple[Any, Any], serve_bundle: Path) -> Bundle:
    """The build context with models/ exported from a model fitted on the real training split (the session's
    serving bundle, tests/serving.py, which the other serving tests use too)."""
    context = tmp_path_factory.mktemp("image-context")
    for name in ("Dockerfile", ".dockerignore", *_build_inputs()):
        source = ROOT / name
        if name == "models" or not source.exists():
            continue
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
        else:
            shutil.copy(source, context / name)
    settings = load_settings(context / "params.yaml")
    holdout = serve_split[1]
    shutil.copytree(serve_bundle, context / "models")
    features = holdout[list(settings.data.features)]
    expected = load_bundle(context / "models", settings).predict_proba(features)[:, 1]
    return Bundle(context, settings, serving.records(holdout, settings), expected)


@pytest.fixture(scope="module")
def image(bundle: Bundle) -> Iterator[str]:
    """The runtime target built with podman; removed afterwards (its layers stay cached for the next run)."""
    tag = f"localhost/conveyor-image-test:{uuid.uuid4().hex[:12]}"
    version = json.loads((bundle.context / "models" / "metadata.json").read_text())["version"]
    command = [
        sys.executable, str(BUILD), "--tag", tag, "--target", "runtime",
        "--build-arg", f"GIT_SHA={'a' * 40}", "--build-arg", f"MODEL_VERSION={version}",
        "--build-arg", "SOURCE_URL=https://example.invalid/conveyor", str(bundle.context),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"image build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    print(f"image build: {time.monotonic() - started:.1f} s")
    try:
        yield tag
    finally:
        podman("rmi", "--force", tag, check=False)


@pytest.fixture(scope="module")
def container(image: str, bundle: Bundle) -> Iterator[Container]:
    """The image running as a cluster runs it; stopped and removed afterwards."""
    name = f"conveyor-image-test-{uuid.uuid4().hex[:12]}"
    port = free_port()
    podman(
        "run", "--detach", "--name", name, "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--publish", f"127.0.0.1:{port}:{bundle.settings.serve.port}",
        image,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for(url + routes.READY, timeout=120)
        except AssertionError:
            raise AssertionError(f"{routes.READY} never answered 200; logs:\n{podman('logs', name).stderr}") from None
        yield Container(name, url)
    finally:
        podman("rm", "--force", name, check=False)


def test_runtime_image_holds_the_serving_lock_and_nothing_else(image: str, bundle: Bundle) -> None:
    listing = podman(
        "run", "--rm", "--read-only", "--entrypoint", "python", image, "-c",
        "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))",
    ).stdout  # fmt: skip
    installed = {name.lower().replace("_", "-") for name in listing.split()}
    assert installed == _lock_names(bundle.context / "requirements-serve.txt") | {"conveyor"}
    assert not installed & PIPELINE_ONLY


def test_image_config_user_labels_healthcheck(image: str, bundle: Bundle) -> None:
    config = json.loads(podman("image", "inspect", image).stdout)[0]
    labels = config["Config"]["Labels"]
    assert config["Config"]["User"] == f"{UID}:{UID}"
    assert labels["org.opencontainers.image.revision"] == "a" * 40
    assert labels["org.opencontainers.image.version"] == serving.VERSION
    assert labels["org.opencontainers.image.source"] == "https://example.invalid/conveyor"
    assert routes.READY in " ".join(config["Healthcheck"]["Test"])
    assert f"{bundle.settings.serve.port}/tcp" in config["Config"]["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Config"]["Env"])
    assert (env["MODEL_DIR"], env["CONVEYOR_PARAMS"]) == ("/app/models", "/app/params.yaml")


def test_container_answers_like_the_in_process_model(container: Container, bundle: Bundle) -> None:
    limit = bundle.settings.serve.max_batch_records
    served: list[float] = []
    for start in range(0, len(bundle.holdout), limit):
        answer = _post(container.url + routes.PREDICT, bundle.holdout[start : start + limit])
        assert answer["model_version"] == serving.VERSION
        served += [prediction["probability"] for prediction in answer["predictions"]]
    np.testing.assert_allclose(served, bundle.expected, rtol=0, atol=TOLERANCE)

    single = _post(container.url + routes.PREDICT, bundle.holdout[0])
    assert abs(single["probability"] - bundle.expected[0]) <= TOLERANCE


def test_container_runs_read_only_as_the_unprivileged_user(container: Container) -> None:
    assert podman("exec", container.name, "id", "-u").stdout.strip() == UID
    # As root, so that only the read-only mount (not file permissions) can refuse the write.
    refused = podman("exec", "--user", "0", container.name, "sh", "-c", "echo x > /app/probe", check=False)
    assert refused.returncode != 0
    assert "Read-only file system" in refused.stderr


def test_healthcheck_passes_inside_the_container(container: Container) -> None:
    assert podman("healthcheck", "run", container.name, check=False).returncode == 0


def test_healthcheck_fails_while_the_model_is_missing(image: str, bundle: Bundle) -> None:
    name = f"conveyor-image-test-{uuid.uuid4().hex[:12]}"
    port = free_port()
    podman(
        "run", "--detach", "--name", name, "--read-only", "--tmpfs", "/tmp", "--env", "MODEL_DIR=/app/missing",
        "--publish", f"127.0.0.1:{port}:{bundle.settings.serve.port}", image,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}{routes.HEALTH}", timeout=120)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{routes.READY}", timeout=5)
        assert refused.value.code == 503
        assert podman("healthcheck", "run", name, check=False).returncode != 0
    finally:
        podman("rm", "--force", name, check=False)


def test_container_stops_cleanly_on_sigterm(container: Container) -> None:
    started = time.monotonic()
    podman("stop", "--time", "20", container.name)
    assert time.monotonic() - started < 20
    state = json.loads(podman("inspect", container.name).stdout)[0]["State"]
    assert state["ExitCode"] == 0, podman("logs", container.name).stderr[-2000:]
