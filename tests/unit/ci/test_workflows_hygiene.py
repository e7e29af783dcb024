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
    for wf, name, job in jobs():
        if (wf, name) in PUSHERS:
            assert job["concurrency"]["cancel-in-progress"] is False


def _group(workflow: str, job: str, environment: str) -> str:
    """The job's concurrency group for a run on `environment` (the one expression rollback.yml uses)."""
    group = {(wf, name): j for wf, name, j in jobs()}[(workflow, job)]["concurrency"]["group"]
    return re.sub(r"\$\{\{[^}]*environment[^}]*\}\}", environment, group)


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_a_rollback_never_waits_behind_a_bump_or_a_promotion(environment: str) -> None:
    """GitHub keeps one pending job per group and the next one cancels it; a promotion waiting for its reviewers
    holds deploy-production. A rollback in that group could be cancelled or stuck: it has its own."""
    rollback = _group("rollback.yml", "rollback", environment)
    assert "${{" not in rollback, "the group names the environment through the one expression"
    assert rollback != _group("deploy.yml", "promote", environment)
    assert rollback != _group("train.yml", "bump", environment)
    job = load(ROOT / ".github" / "workflows" / "rollback.yml")["jobs"]["rollback"]
    assert job["concurrency"]["cancel-in-progress"] is False
    assert job["concurrency"]["queue"] == "max", "every rollback waits its turn, none replaces another"
    others = {_group(wf, name, environment) for wf, name, j in jobs() if "concurrency" in j and name != "rollback"}
    assert rollback not in others


def test_the_train_concurrency_comment_says_what_a_third_run_does() -> None:
    text = (ROOT / ".github" / "workflows" / "train.yml").read_text()
    assert "a second one waits for the first instead of cancelling it" not in text
    assert "a third replaces the waiting second" in text


def test_training_triggers_leave_deploy_commits_out() -> None:
    on = load(ROOT / ".github" / "workflows" / "train.yml")[True]  # PyYAML reads the key `on` as True
    assert set(on) == {"schedule", "workflow_dispatch", "repository_dispatch", "push"}
    assert on["repository_dispatch"] == {"types": ["conveyor-retrain"]}  # `conveyor monitor`'s retrain trigger
    assert on["push"]["paths"] == ["data.dvc", "params.yaml", "dvc.yaml", "src/**"]
    assert not any(p.startswith("k8s") for p in on["push"]["paths"])


APP_TOKEN = "actions/create-github-app-token@"
TOKEN = "${{ steps.app-token.outputs.token || github.token }}"


def test_every_push_uses_the_app_token_or_falls_back_to_the_workflow_token() -> None:
    """The Actions identity cannot bypass a ruleset; a GitHub App can (docs/workflows.md)."""
    for workflow, name, job in jobs():
        if (workflow, name) not in PUSHERS:
            assert not any(step.get("uses", "").startswith(APP_TOKEN) for step in job.get("steps", []))
            continue
        uses = [step.get("uses", "") for step in job["steps"]]
        app = uses.index(next(u for u in uses if u.startswith(APP_TOKEN)))
        checkout = uses.index(next(u for u in uses if u.startswith("actions/checkout@")))
        assert app < checkout, f"{workflow} {name}: the token comes before the checkout that persists it"
        step = job["steps"][app]
        assert step["id"] == "app-token" and step["if"] == "${{ vars.CONVEYOR_APP_CLIENT_ID != '' }}"
        assert step["with"] == {
            "client-id": "${{ vars.CONVEYOR_APP_CLIENT_ID }}",
            "private-key": "${{ secrets.CONVEYOR_APP_PRIVATE_KEY }}",
            "permission-contents": "write",
        }, f"{workflow} {name}: an installation token for contents: write, nothing more"
        assert job["steps"][checkout]["with"]["token"] == TOKEN, f"{workflow} {name}: push with the App's token"


SKIPS_BOT_COMMITS = (
    "!startsWith(github.event.head_commit.message, 'deploy(')",
    "!startsWith(github.event.head_commit.message, 'data:')",
)


@pytest.mark.parametrize("job", ["pipeline", "pipeline-image"])
def test_a_pushed_bump_or_data_commit_starts_no_retrain(job: str) -> None:
    """An App token's push starts workflows (the workflow token's does not): train.yml's push-triggered jobs skip
    the commits the pipeline itself makes."""
    condition = " ".join(load(ROOT / ".github" / "workflows" / "train.yml")["jobs"][job]["if"].split())
    assert all(skip in condition for skip in SKIPS_BOT_COMMITS), condition


def test_a_bot_push_of_a_staging_release_starts_no_second_deploy() -> None:
    """The bump calls deploy.yml itself and a rollback's revert must not be promoted: deploy.yml's push trigger
    skips pushes by a bot, and the train workflow's call says it comes after a bump."""
    deploy = load(ROOT / ".github" / "workflows" / "deploy.yml")
    assert deploy[True]["push"]["paths"] == ["k8s/overlays/staging/release/**"]
    condition = " ".join(deploy["jobs"]["staging"]["if"].split())
    assert "(inputs.after-bump || github.event_name != 'push' || !endsWith(github.actor, '[bot]'))" in condition
    assert deploy[True]["workflow_call"]["inputs"]["after-bump"]["default"] is False
    call = load(ROOT / ".github" / "workflows" / "train.yml")["jobs"]["deploy"]
    assert call["with"] == {"after-bump": True}


# The first major of each action that runs on Node 24 (each one's action.yml `runs.using`); Node 20 is retired.
NODE24_MAJOR = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/upload-artifact": 6,
    "actions/download-artifact": 7,
    "actions/create-github-app-token": 2,
    "docker/setup-buildx-action": 4,
    "docker/login-action": 4,
    "docker/build-push-action": 7,
    "marocchino/sticky-pull-request-comment": 3,
}


def test_every_action_runs_on_node_24() -> None:
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            match = USES_LINE.match(line)
            if match is None or match["ref"].startswith("./"):
                continue
            action = match["ref"].split("@")[0]
            assert action in NODE24_MAJOR, f"{path.name}: {action}: add the major that runs on Node 24"
            major = int(re.search(r"#\s*v(\d+)\.", match["rest"])[1])
            assert major >= NODE24_MAJOR[action], f"{path.name}: {action} v{major} runs on Node 20"


def test_dependabot_keeps_the_action_pins_current() -> None:
    config = load(ROOT / ".github" / "dependabot.yml")
    (actions,) = [u for u in config["updates"] if u["package-ecosystem"] == "github-actions"]
    assert actions["directory"] == "/" and actions["schedule"]["interval"] == "weekly"


def test_the_train_job_outlasts_the_argo_deadline() -> None:
    """`conveyor argo submit` waits up to argo.deadline_seconds; the job must not be killed before it gives up."""
    from conveyor.config import load_settings

    deadline = load_settings(ROOT / "params.yaml").argo.deadline_seconds
    timeout = load(ROOT / ".github" / "workflows" / "train.yml")["jobs"]["pipeline"]["timeout-minutes"]
    setup = 30  # install, the data, the bundle export: minutes around the Argo run
    assert timeout * 60 >= deadline + setup * 60, f"timeout-minutes {timeout} < argo.deadline_seconds/60 + {setup}"


def test_only_the_default_branch_deploys() -> None:
    """A dispatch on another branch would bump that branch while deploy.yml and Argo CD read the default one."""
    bump = load(ROOT / ".github" / "workflows" / "train.yml")["jobs"]["bump"]
    first = bump["steps"][0]
    assert first["if"] == "${{ github.event_name == 'workflow_dispatch' && github.ref_name != env.DEFAULT_BRANCH }}"
    assert first["run"].rstrip().endswith("exit 1")
    assert bump["env"]["DEFAULT_BRANCH"] == "${{ github.event.repository.default_branch || 'main' }}"
