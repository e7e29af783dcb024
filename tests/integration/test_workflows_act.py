"""The workflows run: `act` in host mode runs train.yml and ci.yml end to end on the real pipeline.

Each remote action is replaced by its stand-in in .github/act/ (`--local-repository`); a plain actions/checkout is
act's own copy of the working tree, and one that names another ref fetches it from the local origin. The runs happen in a temporary git repository made from this working tree, whose
`origin` URL names a GitHub repository but is rewritten (`url.<bare>.insteadOf`) to a local bare repository, so
the deploy commit is really pushed. Nothing leaves the machine: no image pull, no update check, no network.

GitHub itself cannot run here, so two things stand in for it: the `gh` command the pull-request job calls to fetch
main's latest reports (a script serving the train run's uploaded reports), and the stand-in actions above.
The image is built only where podman (or buildah) and the local base image exist (scripts/ci/setup-podman.sh);
elsewhere the test asserts that the image job fails saying so and that nothing is deployed.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from conveyor.ci.comment import MARKER
from tests.conftest import ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    # The pull-request run diffs against the train run's reports (module fixtures): both on one xdist worker.
    pytest.mark.xdist_group("act"),
    pytest.mark.skipif(
        os.environ.get("ACT") == "true", reason="already inside act: the workflows would run themselves"
    ),
]

REPOSITORY = "conveyor-org/conveyor"
ACT = Path(sys.executable).with_name("act")
BASE_IMAGE = "localhost/debian-bookworm:base"
USES = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<action>[\w.-]+/[\w.-]+)@(?P<ref>[0-9a-f]{40})\b", re.MULTILINE)
ACT_TIMEOUT = 900
# The workflows are under test here, not the model (tests/integration/test_pipeline.py tests it): fewer boosting
# rounds and folds keep two pipeline runs short. Every gate threshold stays as params.yaml sets it.
FASTER_MODEL = {"max_iter": 60}


def remote_actions() -> set[tuple[str, str]]:
    """Every (owner/repo, sha) the workflows pin."""
    found = set()
    for workflow in (ROOT / ".github" / "workflows").glob("*.yml"):
        found |= {(m["action"], m["ref"]) for m in USES.finditer(workflow.read_text())}
    return found


def builder_ready() -> bool:
    """podman with the local base image the stand-in builds FROM (scripts/ci/setup-podman.sh makes both)."""
    if shutil.which("podman") is None:
        return False
    return subprocess.run(["podman", "image", "exists", BASE_IMAGE], check=False).returncode == 0


@dataclass
class Run:
    """One act run, its parsed JSON log lines and where its stand-ins wrote."""

    returncode: int
    lines: list[dict]
    log: Path
    artifacts: Path
    comments: Path
    outputs: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for line in self.lines:
            if line.get("command") == "set-output":
                self.outputs[(line["jobID"], line["name"])] = line["arg"]

    def job_result(self, job: str) -> str | None:
        results = [line["jobResult"] for line in self.lines if line.get("jobID") == job and "jobResult" in line]
        return results[-1] if results else None

    def summary(self, job: str) -> str:
        return "\n".join(
            line["msg"].split("Summary - ", 1)[1]
            for line in self.lines
            if line.get("jobID") == job and "Summary - " in line.get("msg", "")
        )

    def said(self, job: str) -> str:
        return "".join(line.get("msg", "") for line in self.lines if line.get("jobID") == job)

    def tail(self) -> str:
        return self.log.read_text()[-6000:]


@dataclass
class Workspace:
    """A git repository made from this working tree, its bare `origin`, and the folders the stand-ins use."""

    root: Path
    repo: Path
    origin: Path
    registry: Path
    dvc_remote: Path
    bin: Path

    def git(self, *args: str, cwd: Path | None = None) -> str:
        done = subprocess.run(
            ["git", *args], cwd=cwd or self.repo, capture_output=True, text=True, check=True, env=_git_env()
        )
        return done.stdout.strip()

    def act(self, workflow: str, event: str, job: str, payload: dict, name: str, variables: dict[str, str]) -> Run:
        folder = self.root / name
        folder.mkdir()
        (folder / "event.json").write_text(json.dumps(payload))
        stubs = ROOT / ".github" / "act"
        cmd = [
            str(ACT), event, "-W", f".github/workflows/{workflow}", "-j", job, "-e", str(folder / "event.json"),
            "-P", "ubuntu-latest=-self-hosted", "--pull=false", "--action-offline-mode", "--no-cache-server",
            "--defaultbranch", "main",  # act fills github.event.repository.default_branch with it (else master)
            "--action-cache-path", str(folder / "act-cache"), "--json",
            "-s", "GITHUB_TOKEN=act-local-token",
            "--env", f"GITHUB_REPOSITORY={REPOSITORY}",  # act reads it from origin's URL, rewritten here
            "--env", f"CONVEYOR_ACT_VENV={Path(sys.executable).parents[1]}",
            "--env", f"CONVEYOR_ACT_ARTIFACTS={folder / 'artifacts'}",
            "--env", f"CONVEYOR_ACT_COMMENTS={folder / 'comments'}",
            "--env", f"CONVEYOR_ACT_REGISTRY={self.registry}",
            "--env", f"CONVEYOR_ACT_BASE_IMAGE={BASE_IMAGE}",
            "--env", f"FAKE_GH_REPORTS={self.root / 'train' / 'artifacts' / 'reports'}",
        ]  # fmt: skip
        # act checks out the working tree itself for a plain actions/checkout; its stand-in serves the steps that
        # name another ref (act's isLocalCheckout: pkg/runner/run_context.go).
        cmd += ["--env", f"CONVEYOR_ACT_ORIGIN={self.origin}"]
        for action, ref in sorted(remote_actions()):
            cmd += ["--local-repository", f"{action}@{ref}={stubs / action.split('/')[1]}"]
        for key, value in variables.items():
            cmd += ["--var", f"{key}={value}"]
        env = os.environ | {
            "GIT_CONFIG_GLOBAL": os.devnull,  # the jobs set their own identity, as on GitHub
            "ACT_DISABLE_VERSION_CHECK": "1",
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"),
        }
        log = folder / "act.log"
        with log.open("w") as out:
            done = subprocess.run(
                cmd, cwd=self.repo, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=ACT_TIMEOUT, check=False
            )
        lines = []
        for raw in log.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                lines.append({"msg": raw})
        return Run(done.returncode, lines, log, folder / "artifacts", folder / "comments")


def _git_env() -> dict[str, str]:
    return os.environ | {
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Conveyor Tests",
        "GIT_AUTHOR_EMAIL": "tests@conveyor.invalid",
        "GIT_COMMITTER_NAME": "Conveyor Tests",
        "GIT_COMMITTER_EMAIL": "tests@conveyor.invalid",
    }


FAKE_GH = """#!/usr/bin/env bash
# Stands in for the GitHub CLI: main's latest successful CI run is run 1, whose reports are $FAKE_GH_REPORTS.
set -euo pipefail
case "$1 $2" in
  "run list") echo 1 ;;
  "run download")
    shift 2
    while [ $# -gt 0 ]; do case "$1" in --dir|-D) dir="$2"; shift 2 ;; *) shift ;; esac; done
    mkdir -p "$dir" && cp -a "$FAKE_GH_REPORTS/." "$dir/" ;;
  *) echo "fake gh: unexpected: $*" >&2; exit 1 ;;
esac
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("act")
    repo, origin = root / "repo", root / "origin.git"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["model"]["params"].update(FASTER_MODEL)
    params["model"]["mitigation"]["cv_folds"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    space = Workspace(root, repo, origin, root / "registry", root / "dvc-remote", root / "bin")
    space.bin.mkdir()
    (space.bin / "gh").write_text(FAKE_GH)
    (space.bin / "gh").chmod(0o755)
    space.git("init", "-q", "-b", "main")
    space.git("add", "-A")
    space.git("commit", "-qm", "the working tree under test")
    space.git("init", "-q", "--bare", str(origin), cwd=root)
    url = f"https://github.com/{REPOSITORY}"
    space.git("remote", "add", "origin", url)
    space.git("config", f"url.{origin}.insteadOf", url)
    space.git("push", "-q", "origin", "main")
    yield space


@pytest.fixture(scope="module")
def dvc_remote(workspace: Workspace, fetched_data: Path) -> Path:
    """A DVC remote holding exactly what data.dvc records, made from the real fetched data."""
    scratch = workspace.root / "dvc-seed"
    scratch.mkdir()
    shutil.copy(workspace.repo / "data.dvc", scratch / "data.dvc")
    shutil.copytree(fetched_data, scratch / "data")
    dvc = str(Path(sys.executable).with_name("dvc"))
    for cmd in (
        ["init", "--no-scm", "-q"],
        ["commit", "-f", "-q", "data.dvc"],
        ["remote", "add", "-d", "seed", str(workspace.dvc_remote)],
        ["push", "-q", "data.dvc"],
    ):
        subprocess.run([dvc, *cmd], cwd=scratch, check=True, capture_output=True)
    assert (scratch / "data.dvc").read_text() == (workspace.repo / "data.dvc").read_text()
    return workspace.dvc_remote


def train_paths() -> list[str]:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "train.yml").read_text())
    return workflow[True]["push"]["paths"]  # PyYAML reads the key `on` as True


def test_every_pinned_action_has_a_stand_in() -> None:
    missing = [
        action
        for action, _ in remote_actions()
        if not (ROOT / ".github" / "act" / action.split("/")[1] / "action.yml").exists()
    ]
    assert not missing, f"no stand-in in .github/act/ for {missing}"


@pytest.fixture(scope="module")
def train_run(workspace: Workspace, dvc_remote: Path) -> Iterator[Run]:
    run = workspace.act(
        "train.yml", "workflow_dispatch", "bump", {"inputs": {}}, "train", {"DVC_REMOTE_URL": str(dvc_remote)}
    )
    yield run
    image = run.outputs.get(("pipeline", "image"))
    if image and shutil.which("podman"):  # the tag only; the layers stay cached for the next build
        subprocess.run(["podman", "rmi", "--ignore", image], capture_output=True, check=False)


def test_train_workflow_gates_builds_pushes_and_bumps_staging(workspace: Workspace, train_run: Run) -> None:
    run = train_run
    start = workspace.git("rev-parse", "HEAD")
    assert run.job_result("pipeline") == "success", run.summary("pipeline") or run.tail()
    # A dispatched retrain first records its new batch as a `data:` commit on main, then trains on that commit.
    head = run.outputs[("pipeline", "commit")]
    assert workspace.git("rev-parse", f"{head}^", cwd=workspace.origin) == start
    data_message = workspace.git("log", "-1", "--format=%B", head, cwd=workspace.origin)
    assert data_message.startswith("data: batch 1, ") and "Data-Version: " in data_message
    assert workspace.git("diff", "--name-only", start, head, cwd=workspace.origin).splitlines() == ["data.dvc"]
    image = f"ghcr.io/{REPOSITORY}:1-{head[:7]}"
    assert run.outputs[("pipeline", "passed")] == "true"
    assert run.outputs[("pipeline", "model-version")] == "1"
    assert run.outputs[("pipeline", "image")] == image

    summary = run.summary("pipeline")
    assert "### ✅ Conveyor gate passed: 6 checks\n\nRegistered as version 1 (`candidate`)." in summary
    for check in ("quality", "drift", "evaluate", "fairness", "latency"):  # drift with no batch: information
        assert f"| {check} |" in summary and f"| ❌ fail | {check} |" not in summary

    gate = json.loads((run.artifacts / "reports" / "gate.json").read_text())
    assert gate["passed"] and str(gate["model_version"]) == "1" and all(gate["checks"].values())
    assert json.loads((run.artifacts / "reports" / "drift.json").read_text())["metrics"]["current_rows"] > 0
    metadata = json.loads((run.artifacts / "model" / "metadata.json").read_text())
    assert str(metadata["version"]) == "1" and metadata["git_commit"] == head
    data_dvc = yaml.safe_load(workspace.git("show", f"{head}:data.dvc", cwd=workspace.origin))
    assert metadata["data_version"] == data_dvc["outs"][0]["md5"]
    assert "dvc pull data.dvc" in run.said("pipeline")

    if not builder_ready():
        assert run.returncode != 0 and run.job_result("image") == "failure"
        assert "scripts/ci/setup-podman.sh" in run.said("image")
        assert run.job_result("bump") is None
        assert workspace.git("rev-parse", "refs/heads/main", cwd=workspace.origin) == head
        return

    assert run.returncode == 0, run.tail()
    digest = run.outputs[("image", "digest")]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    labels = json.loads(
        subprocess.run(
            ["podman", "image", "inspect", "--format", "{{json .Labels}}", image],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    assert labels["io.conveyor.model.version"] == "1"
    assert labels["org.opencontainers.image.revision"] == head
    index = json.loads((workspace.registry / "index.json").read_text())
    assert digest in {m["digest"] for m in index["manifests"]}

    tip = workspace.git("rev-parse", "refs/heads/main", cwd=workspace.origin)
    assert workspace.git("rev-parse", f"{tip}^", cwd=workspace.origin) == head
    message = workspace.git("log", "-1", "--format=%B", tip, cwd=workspace.origin)
    assert message.startswith(f"deploy(staging): model v1 {image}\n")
    assert f"Image-Digest: {digest}" in message and "Gate-Report: https://github.com/" in message
    release = workspace.git("show", f"{tip}:k8s/overlays/staging/release/kustomization.yaml", cwd=workspace.origin)
    assert digest in release
    assert workspace.git("log", "-1", "--format=%an", tip, cwd=workspace.origin) == "github-actions[bot]"
    changed = workspace.git("diff", "--name-only", head, tip, cwd=workspace.origin).splitlines()
    assert changed and all(path.startswith("k8s/overlays/staging/") for path in changed), changed
    retrains = [p for p in changed for glob in train_paths() if fnmatch.fnmatch(p, glob)]
    assert not retrains, f"the bump commit would retrigger training: {retrains}"


def test_ci_workflow_on_a_pull_request_reports_and_comments(workspace: Workspace, train_run: Run) -> None:
    """Runs after the train workflow: its uploaded reports are main's latest, the baseline of the diff."""
    assert (train_run.artifacts / "reports" / "gate.json").exists()
    head = workspace.git("rev-parse", "HEAD")
    payload = {
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"ref": "feature", "sha": head, "repo": {"full_name": REPOSITORY}},
            "base": {"ref": "main", "repo": {"full_name": REPOSITORY}},
        },
        "repository": {"full_name": REPOSITORY, "owner": {"login": REPOSITORY.split("/")[0]}},
    }
    run = workspace.act("ci.yml", "pull_request", "comment", payload, "ci", {})
    assert run.returncode == 0, run.summary("pipeline") or run.tail()
    assert run.job_result("pipeline") == "success" and run.job_result("comment") == "success"
    assert run.outputs[("pipeline", "passed")] == "true"
    assert "| ✅ pass | evaluate |" in run.summary("pipeline")
    assert json.loads((run.artifacts / "reports" / "gate.json").read_text())["passed"]

    comment = (run.comments / "7-conveyor-gate.md").read_text()
    assert comment.startswith(MARKER)
    assert "### ✅ Conveyor gate passed" in comment and "| ✅ pass | fairness |" in comment
    diff = comment.split("#### Metrics against main", 1)[1]
    assert "| report | metric | main | this change | change |" in diff
    assert re.search(r"^\| evaluate \| ROC AUC \| 0\.\d+ \| 0\.\d+ \| ", diff, re.MULTILINE), diff
    ingested = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["ingest_rows"]
    assert f"| drift | current rows | {ingested:,} |" in diff
