"""The workflows' house rules that actionlint, zizmor and the schema do not check on their own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
USES_LINE = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\b")
# Which job may hold which write permission, and why.
WRITERS = {
    "contents": {
        ("train.yml", "bump"),
        ("deploy.yml", "promote"),
        ("rollback.yml", "rollback"),
        ("train.yml", "deploy"),
        ("train.yml", "pipeline"),  # pushes the data commit (`conveyor ci data commit`) before training on it
    },
    "packages": {("train.yml", "image"), ("train.yml", "pipeline-image")},
    "pull-requests": {("ci.yml", "comment")},
    "id-token": set(),
}
PUSHERS = {("train.yml", "bump"), ("deploy.yml", "promote"), ("rollback.yml", "rollback"), ("train.yml", "pipeline")}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(p.name, name, job) for p in WORKFLOWS for name, job in load(p)["jobs"].items()]


def steps() -> list[tuple[str, str, dict[str, Any]]]:
    return [(wf, name, step) for wf, name, job in jobs() for step in job.get("steps", [])]


def test_the_four_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "train.yml", "deploy.yml", "rollback.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_top_level_permissions_are_empty(path: Path) -> None:
    assert load(path)["permissions"] == {}


def test_every_job_has_a_timeout_and_its_own_permissions() -> None:
    for workflow, name, job in jobs():
        assert "permissions" in job, f"{workflow} {name}: no job-level permissions"
        if "uses" not in job:  # a reusable-workflow call takes its jobs' timeouts
            assert isinstance(job.get("timeout-minutes"), int), f"{workflow} {name}: no timeout-minutes"


def test_write_permissions_only_where_needed() -> None:
    for workflow, name, job in jobs():
        for scope, level in job["permissions"].items():
            if level == "write":
                assert (workflow, name) in WRITERS.get(scope, set()), f"{workflow} {name}: {scope}: write"


def test_every_action_is_pinned_by_sha_with_a_version_comment() -> None:
    for path in [*WORKFLOWS, *sorted((ROOT / ".github" / "act").glob("*/action.yml"))]:
        for line in path.read_text().splitlines():
            match = USES_LINE.match(line)
            if match is None or match["ref"].startswith("./"):
                continue
            assert PINNED.match(match["ref"]), f"{path.name}: {line.strip()} is not pinned by a full commit SHA"
            assert VERSION_COMMENT.search(match["rest"]), f"{path.name}: {line.strip()} has no # vX.Y.Z comment"


def test_no_expression_inside_run() -> None:
    for workflow, name, step in steps():
        assert "${{" not in step.get("run", ""), f"{workflow} {name}: pass expressions to run: through env:"


def test_credentials_persist_only_in_jobs_that_push() -> None:
    for workflow, name, step in steps():
        if step.get("uses", "").startswith("actions/checkout@"):
            persist = (step.get("with") or {}).get("persist-credentials")
            if (workflow, name) in PUSHERS:
                assert persist is True, f"{workflow} {name}: say persist-credentials: true where it pushes"
            else:
                assert persist is False, f"{workflow} {name}: checkout without persist-credentials: false"


def test_retrains_and_bumps_never_race() -> None:
    train = load(ROOT / ".github" / "workflows" / "train.yml")
    assert train["jobs"]["pipeline"]["concurrency"] == {"group": "train", "cancel-in-progress": False}
    groups = {(wf, name): job.get("concurrency", {}).get("group") for wf, name, job in jobs() if (wf, name) in PUSHERS}
    assert groups[("train.yml", "bump")] == "deploy-staging"
    assert groups[("deploy.yml", "promote")] == "deploy-production"
    assert groups[("rollback.yml", "rollback")].startswith("deploy-${{")
    for wf, name, job in jobs():
        if (wf, name) in PUSHERS:
            assert job["concurrency"]["cancel-in-progress"] is False


def test_training_triggers_leave_deploy_commits_out() -> None:
    on = load(ROOT / ".github" / "workflows" / "train.yml")[True]  # PyYAML reads the key `on` as True
    assert set(on) == {"schedule", "workflow_dispatch", "push"}
    assert on["push"]["paths"] == ["data.dvc", "params.yaml", "dvc.yaml", "src/**"]
    assert not any(p.startswith("k8s") for p in on["push"]["paths"])
