"""The registry follows deployments, against a real `mlflow server` and real git: `conveyor ci registry-alias`
moves `staging` and `champion` to what the pushed release files pin, and registering a run twice adds no version."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conveyor.config import load_settings
from conveyor.registry import tracking
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


def image(version: int, fill: str) -> str:
    return f"ghcr.io/conveyor-org/conveyor:{version}-{fill * 7}@sha256:{fill * 64}"


def test_aliases_follow_bump_promote_and_rollback(tmp_path: Path, mlflow_server: str, monkeypatch) -> None:
    name = f"lifecycle-{uuid.uuid4().hex[:8]}"
    repo = tmp_path / "repo"
    repo.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"]["name"] = name
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(ROOT / "k8s" / "overlays", repo / "k8s" / "overlays")
    env = os.environ | {"MLFLOW_TRACKING_URI": mlflow_server, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip

    def run(*args: str, uri: bool = True) -> subprocess.CompletedProcess[str]:
        use = env if uri else {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}
        return subprocess.run(args, cwd=repo, env=use, capture_output=True, text=True, check=False)

    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "seed"]):
        run("git", *cmd)

    # two registered versions, each from a run with a model folder
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(repo / "params.yaml")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    run_ids = []
    for _ in range(2):
        tracking.configure()
        with mlflow.start_run() as active:
            mlflow.log_artifacts(str(tmp_path / "model"), tracking.MODEL_ARTIFACT)
            run_ids.append(active.info.run_id)
    first = tracking.register(settings, run_ids[0])
    again = tracking.register(settings, run_ids[0])  # the gate re-run on an unchanged run
    second = tracking.register(settings, run_ids[1])
    assert (first.version, again.version, second.version) == ("1", "1", "2")
    assert len(tracking.versions(settings)) == 2

    def alias(which: str) -> str | None:
        found = tracking.by_alias(settings, which)
        return None if found is None else str(found.version)

    def deploy(*args: str) -> None:
        done = run(CONVEYOR, "deploy", *args, "--no-push")
        assert done.returncode == 0, done.stderr

    def follow(env_name: str) -> subprocess.CompletedProcess[str]:
        return run(CONVEYOR, "ci", "registry-alias", "--env", env_name)

    deploy("bump", "--env", "staging", "--image", image(1, "a"))
    assert follow("staging").returncode == 0 and alias("staging") == "1" and alias("champion") is None
    deploy("promote")
    assert "'champion' -> " in follow("production").stdout and alias("champion") == "1"
    deploy("bump", "--env", "staging", "--image", image(2, "b"))
    follow("staging")
    deploy("promote")
    follow("production")
    assert (alias("staging"), alias("champion")) == ("2", "2")
    deploy("rollback", "--env", "production", "--reason", "canary aborted")
    assert follow("production").returncode == 0 and alias("champion") == "1"

    # no shared registry: the step says so, succeeds, and moves nothing
    deploy("rollback", "--env", "staging", "--reason", "a smoke test failed")  # staging back on v1
    unset = run(CONVEYOR, "ci", "registry-alias", "--env", "staging", uri=False)
    assert unset.returncode == 0 and "MLFLOW_TRACKING_URI is not set" in unset.stdout and alias("staging") == "2"

    # a version the registry never saw: one sentence, exit 2, nothing moved
    deploy("bump", "--env", "staging", "--image", image(9, "d"))
    missing = follow("staging")
    assert missing.returncode == 2 and "pins model v9" in missing.stderr and "has no version 9" in missing.stderr
    assert alias("staging") == "2"
    assert {v.version for v in MlflowClient(mlflow_server).search_model_versions(f"name='{name}'")} == {"1", "2"}
