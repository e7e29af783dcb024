"""The rendered WorkflowTemplate's checkout and first stages, run on this machine.

No cluster runs here, so each task's container command runs the way Argo would run it in a pod: the same
script, in the task's workingDir, with its rendered environment. A temporary folder stands in for the
workspace volume and another for the scratch emptyDir; the Secrets get local values (an sqlite MLflow file,
a local DVC remote) and the repository is a local git repository instead of GitHub. Only the tasks that wait
for nothing but the checkout run: the whole DAG takes minutes here, and the full pipeline has its own tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conveyor.argo import dag, render
from tests.conftest import Project

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REVISION_PARAMETER = f"{{{{workflow.parameters.{render.REVISION}}}}}"


def _origin(project: Project, remote: Path) -> tuple[str, str]:
    """A git repository holding the project, its data pushed to a DVC remote; (revision, a later tip of main)."""
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["dvc", "init", "-q"],
        ["dvc", "add", "-q", "data"],
        ["dvc", "remote", "add", "--local", "store", str(remote)],
        ["dvc", "push", "-q", "-r", "store"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "the revision to train"],
    ):
        project.sh(*cmd)
    revision = project.sh("git", "rev-parse", "HEAD").stdout.strip()
    (project.root / "later.txt").write_text("a commit after the revision\n")
    project.sh("git", "add", "later.txt")
    project.sh("git", "commit", "-qm", "later")
    return revision, project.sh("git", "rev-parse", "HEAD").stdout.strip()


def _local(value: str, workspace: Path, scratch: Path, revision: str) -> str:
    """A rendered path or parameter, as it reads on this machine."""
    for mount, folder in ((render.WORKSPACE, workspace), (render.SCRATCH, scratch)):
        if value == mount or value.startswith(mount + "/"):
            return str(folder) + value[len(mount) :]
    return value.replace(REVISION_PARAMETER, revision)


def _pod_env(container: dict[str, Any], secrets: dict[str, str], local: Any) -> dict[str, str]:
    """The rendered environment: plain values as written, each secretKeyRef from `secrets` (an optional one that
    is missing stays unset, as Kubernetes leaves it). Only PATH comes from here, for git, dvc and conveyor."""
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = local(item["value"])
        elif item["name"] in secrets:
            env[item["name"]] = secrets[item["name"]]
        else:
            assert item["valueFrom"]["secretKeyRef"].get("optional"), f"{item['name']} is required and not given"
    return env


def test_the_checkout_fetches_the_revision_and_its_data_and_the_first_stages_run_in_it(
    make_project, tmp_path: Path
) -> None:
    project = make_project()
    revision, tip = _origin(project, tmp_path / "dvc-remote")
    template = render.workflow_template(project.settings, dag.read(project.root / "dvc.yaml"))
    workspace, scratch = tmp_path / "workspace", tmp_path / "scratch"
    workspace.mkdir()
    scratch.mkdir()
    (workspace / "lost+found").mkdir()  # what a fresh ext4 volume holds

    def local(value: str) -> str:
        return _local(value, workspace, scratch, revision)

    secrets = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "DVC_REMOTE_URL": str(tmp_path / "dvc-remote"),
    }
    templates = {t["name"]: t for t in template["spec"]["templates"]}
    tasks = templates[template["spec"]["entrypoint"]]["dag"]["tasks"]
    first = [t["name"] for t in tasks if t.get("dependencies") == [render.CHECKOUT]]
    assert first, "no stage waits for the checkout alone"
    for name in [render.CHECKOUT, *first]:
        container = templates[name]["container"]
        env = _pod_env(container, secrets, local)
        if name == render.CHECKOUT:
            env["REPOSITORY"] = str(project.root)  # GitHub's stand-in
        done = subprocess.run(
            [*container["command"], *container["args"]],
            cwd=local(container["workingDir"]),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"task {name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        if name == render.CHECKOUT:
            checkout = Path(local(render.CHECKOUT_DIR))
            head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True)
            assert head.stdout.strip() == revision != tip
            status = subprocess.run(
                ["dvc", "status", "data.dvc"], cwd=checkout, env=env, capture_output=True, text=True
            )
            assert "Data and pipelines are up to date" in status.stdout, status.stderr
            imported = subprocess.run(
                [sys.executable, "-c", "import conveyor; print(conveyor.__file__)"],
                cwd=checkout,
                env=_pod_env(templates["train"]["container"], secrets, local),
                capture_output=True,
                text=True,
            )
            assert imported.stdout.strip() == str(checkout / "src" / "conveyor" / "__init__.py")

    stages = {render.task_name(s.name): s for s in dag.read(project.root / "dvc.yaml")}
    for name in first:
        for out in stages[name].outs:
            assert (Path(local(render.CHECKOUT_DIR)) / out).exists(), f"{name} did not write {out}"
