"""The GitOps loop with real git: a bare repository is the origin Argo CD would read, clones are CI runners.

Argo CD and a cluster cannot run here; what they would apply is what `kubectl kustomize` renders from the
origin, so each test renders a fresh clone of the origin to see what the cluster would get.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.config import load_settings
from conveyor.deploy import commands, history, release
from conveyor.deploy.git import Git
from conveyor.deploy.image import parse_image
from conveyor.errors import ConveyorError
from conveyor.manifests import contract
from tests.conftest import ROOT
from tests.support import expr

pytestmark = pytest.mark.integration

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))
KUBECTL = str(Path(sys.executable).with_name("kubectl"))


def image(version: int, fill: str) -> str:
    return f"ghcr.io/conveyor-org/conveyor:{version}-{fill * 7}@sha256:{fill * 64}"


V1, V2, V3 = image(1, "a"), image(2, "b"), image(3, "c")


def git(where: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, check=True).stdout.strip()


@dataclass
class Clone:
    root: Path

    def deploy(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`conveyor deploy ARGS` in this clone, as a CI job would run it."""
        return subprocess.run([CONVEYOR, "deploy", *args], cwd=self.root, capture_output=True, text=True, check=False)

    def ok(self, *args: str) -> str:
        done = self.deploy(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def repo(self) -> commands.Repo:
        return commands.Repo(Git(self.root), load_settings(self.root / "params.yaml"), remote="origin")


@dataclass
class Origin:
    bare: Path
    tmp: Path

    def clone(self, name: str) -> Clone:
        target = self.tmp / name
        subprocess.run(["git", "clone", "--quiet", str(self.bare), str(target)], check=True)
        git(target, "config", "user.name", f"runner {name}")
        git(target, "config", "user.email", f"{name}@conveyor.invalid")
        return Clone(target)

    def log(self) -> list[str]:
        """Subjects on origin/main, newest first."""
        return git(self.bare, "log", "--format=%s", "main").splitlines()

    def message(self, rev: str = "main") -> str:
        return git(self.bare, "log", "-1", "--format=%B", rev)


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    """A bare origin holding the repository's real params.yaml and k8s/ base, overlays and what they include."""
    seed = tmp_path / "seed"
    seed.mkdir()
    shutil.copy(ROOT / "params.yaml", seed / "params.yaml")
    for part in ("base", "overlays", "components", "monitoring"):
        shutil.copytree(ROOT / "k8s" / part, seed / "k8s" / part)
    git(seed, "init", "--quiet", "--initial-branch=main")
    git(seed, "add", ".")
    git(seed, "-c", "user.name=seed", "-c", "user.email=seed@conveyor.invalid", "commit", "--quiet", "-m", "seed")
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(seed), str(bare))
    return Origin(bare, tmp_path)


def rendered_image(origin: Origin, environment: str) -> str:
    """The API image a cluster syncing origin/main would run in `environment`."""
    fresh = origin.tmp / f"render-{len(list(origin.tmp.glob('render-*')))}"
    subprocess.run(["git", "clone", "--quiet", str(origin.bare), str(fresh)], check=True)
    out = subprocess.run(
        [KUBECTL, "kustomize", str(fresh / "k8s/overlays" / environment)], capture_output=True, text=True, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    images = {
        d["kind"]: [c["image"] for c in d["spec"]["template"]["spec"]["containers"]]
        for d in docs
        if d["kind"] in ("Deployment", "Job")
    }
    assert images["Deployment"] == images["Job"], "the smoke Job must test the image the API runs"
    (version,) = {d["metadata"]["annotations"][release.MODEL_VERSION] for d in docs if d["kind"] == "Rollout"}
    assert parse_image(images["Deployment"][0]).model_version == int(version), "the analysis expects this version"
    return images["Deployment"][0]


def test_bump_commits_the_new_digest_with_the_contract_message_and_pushes(origin: Origin) -> None:
    ci = origin.clone("ci")
    out = ci.ok("bump", "--env", "staging", "--image", V1, "--gate-report", "https://ci.example/runs/1")
    assert "pushed to origin" in out
    assert rendered_image(origin, "staging") == V1
    assert rendered_image(origin, "production").endswith("@sha256:" + "0" * 64), "production is untouched"
    message = origin.message()
    assert message.splitlines()[0] == "deploy(staging): model v1 ghcr.io/conveyor-org/conveyor:1-aaaaaaa"
    assert message.splitlines()[-3:] == [
        "Model-Version: 1",
        "Image-Digest: sha256:" + "a" * 64,
        "Gate-Report: https://ci.example/runs/1",
    ]
    assert (
        git(origin.bare, "diff", "--name-only", "main~1", "main") == "k8s/overlays/staging/release/kustomization.yaml"
    )


def test_the_same_bump_twice_makes_one_commit(origin: Origin) -> None:
    ci = origin.clone("ci")
    ci.ok("bump", "--env", "staging", "--image", V1)
    before = origin.log()
    again = ci.ok("bump", "--env", "staging", "--image", V1)
    assert "already runs model v1" in again and "nothing to commit" in again
    assert origin.log() == before
    assert git(ci.root, "status", "--porcelain") == ""


def test_promote_gives_production_what_staging_runs(origin: Origin) -> None:
    ci = origin.clone("ci")
    ci.ok("bump", "--env", "staging", "--image", V1, "--gate-report", "https://ci.example/runs/1")
    ci.ok("promote", "--from", "staging", "--to", "production")
    assert rendered_image(origin, "production") == V1
    message = origin.message()
    assert message.startswith("deploy(production): model v1 ghcr.io/conveyor-org/conveyor:1-aaaaaaa\n")
    assert "Gate-Report: https://ci.example/runs/1" in message
    assert "nothing to commit" in ci.ok("promote")
    refused = ci.deploy("promote", "--from", "production", "--to", "staging")
    assert refused.returncode == 2 and "does not come after" in refused.stderr


def test_rollback_reverts_the_last_deploy_commit_and_the_previous_digest_comes_back(origin: Origin) -> None:
    ci = origin.clone("ci")
    ci.ok("bump", "--env", "staging", "--image", V1)
    ci.ok("promote")
    ci.ok("bump", "--env", "staging", "--image", V2)
    ci.ok("promote")
    bad = git(origin.bare, "rev-parse", "main")
    assert rendered_image(origin, "production") == V2

    ci.ok("rollback", "--env", "production", "--reason", "rollout aborted")
    assert rendered_image(origin, "production") == V1
    assert rendered_image(origin, "staging") == V2, "a rollback changes one environment"
    message = origin.message()
    assert message.startswith('Revert "deploy(production): model v2 ghcr.io/conveyor-org/conveyor:2-bbbbbbb"\n')
    assert f"This reverts commit {bad}." in message
    assert "Model-Version: 1\n" in message and "Rollback-Reason: rollout aborted" in message

    ci.ok("rollback", "--env", "staging")
    assert rendered_image(origin, "staging") == V1
    fresh = origin.clone("fresh")
    status = json.loads(fresh.ok("status", "--json"))
    assert {row["environment"]: row["image"] for row in status} == {"staging": V1, "production": V1}
    assert all(row["subject"].startswith('Revert "deploy(') for row in status)

    refused = ci.deploy("rollback", "--env", "production")
    assert refused.returncode == 2
    assert "production has no earlier deploy commit to roll back to" in refused.stderr


def test_rollback_to_a_named_version_reverts_every_deploy_above_it_in_one_commit(origin: Origin) -> None:
    ci = origin.clone("ci")
    for ref in (V1, V2, V3):
        ci.ok("bump", "--env", "staging", "--image", ref)
    above = git(origin.bare, "log", "-2", "--format=%H", "main").splitlines()
    before = len(origin.log())
    ci.ok("rollback", "--env", "staging", "--to", "1")
    assert rendered_image(origin, "staging") == V1
    assert len(origin.log()) == before + 1
    message = origin.message()
    assert message.startswith("Revert 2 deploys of staging: back to model v1\n")
    assert sorted(history.REVERTS.findall(message)) == sorted(above)

    missing = ci.deploy("rollback", "--env", "staging", "--to", "7")
    assert missing.returncode == 2
    assert "--to 7: staging never ran model v7" in missing.stderr
    assert "nothing to commit" in ci.ok("rollback", "--env", "staging", "--to", "1")


def test_a_rollback_for_a_revision_that_a_newer_deploy_replaced_does_nothing(origin: Origin) -> None:
    """Argo CD may report one failure several times (app degraded, rollout aborted): roll back once."""
    ci = origin.clone("ci")
    ci.ok("bump", "--env", "staging", "--image", V1)
    ci.ok("bump", "--env", "staging", "--image", V2)
    failed = git(origin.bare, "rev-parse", "main")
    ci.ok("bump", "--env", "staging", "--image", V3)
    log = origin.log()
    out = ci.ok("rollback", "--env", "staging", "--revision", failed, "--reason", "health degraded")
    assert "no longer runs what" in out and origin.log() == log
    latest = git(origin.bare, "rev-parse", "main")
    ci.ok("rollback", "--env", "staging", "--revision", latest)
    assert rendered_image(origin, "staging") == V2
    again = ci.ok("rollback", "--env", "staging", "--revision", latest)
    assert "nothing to roll back" in again
    assert rendered_image(origin, "staging") == V2, "the duplicate event did not roll back a second time"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("bump", "--env", "qa", "--image", V1), "environment 'qa' is not in deploy.environments"),
        (("bump", "--env", "staging", "--image", "ghcr.io/conveyor-org/conveyor:latest"), "is not a pinned image"),
        (("rollback", "--env", "prod"), "environment 'prod' is not in deploy.environments"),
        (("promote", "--from", "staging", "--to", "canary"), "environment 'canary' is not in deploy.environments"),
    ],
)
def test_bad_arguments_are_refused_with_one_sentence_and_no_commit(
    origin: Origin, args: tuple[str, ...], expected: str
) -> None:
    ci = origin.clone("ci")
    before = origin.log()
    done = ci.deploy(*args)
    assert done.returncode == 2
    assert expected in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert origin.log() == before and git(ci.root, "log", "-1", "--format=%s") == "seed"


def test_a_dirty_tree_is_refused(origin: Origin) -> None:
    ci = origin.clone("ci")
    params = ci.root / "params.yaml"
    params.write_text(params.read_text() + "\n# local edit\n")
    done = ci.deploy("bump", "--env", "staging", "--image", V1)
    assert done.returncode == 2
    assert "the working tree has uncommitted changes (params.yaml)" in done.stderr
    assert origin.log() == ["seed"]


def test_local_commits_missing_on_the_remote_are_not_pushed_along(origin: Origin) -> None:
    ci = origin.clone("ci")
    (ci.root / "notes.txt").write_text("unrelated\n")
    git(ci.root, "add", "notes.txt")
    git(ci.root, "commit", "--quiet", "-m", "unrelated work")
    done = ci.deploy("bump", "--env", "staging", "--image", V1)
    assert done.returncode == 2 and "has commits that are not on origin/main" in done.stderr
    assert origin.log() == ["seed"]


def test_no_push_commits_locally_and_leaves_the_remote_alone(origin: Origin) -> None:
    ci = origin.clone("ci")
    out = ci.ok("bump", "--env", "staging", "--image", V1, "--no-push")
    assert "pushed" not in out
    assert git(ci.root, "log", "-1", "--format=%s").startswith("deploy(staging): model v1")
    assert origin.log() == ["seed"]


def test_a_push_the_remote_refuses_for_another_reason_fails_and_keeps_the_clone_clean(origin: Origin) -> None:
    ci = origin.clone("ci")
    hook = origin.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch: deploys need a review' >&2\nexit 1\n")
    hook.chmod(0o755)
    done = ci.deploy("bump", "--env", "staging", "--image", V1)
    assert done.returncode == 2
    assert "pushing to origin/main failed, nothing was pushed" in done.stderr
    assert git(ci.root, "log", "-1", "--format=%s") == "seed" and git(ci.root, "status", "--porcelain") == ""


def _race(clone: Clone, hook: str) -> None:
    """A pre-push hook: `hook` runs after the clone fetched and committed, right before its push."""
    path = clone.root / ".git/hooks/pre-push"
    path.write_text("#!/bin/sh\nunset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_PREFIX\n" + hook + "\n")
    path.chmod(0o755)


def _bump_from(other: Clone, env: str, ref: str, once: Path | None) -> str:
    guard = f'[ -e "{once}" ] && exit 0; touch "{once}"; ' if once else ""
    return f'{guard}cd "{other.root}" && "{CONVEYOR}" deploy bump --env {env} --image {ref} >&2'


def test_a_push_refused_because_the_remote_moved_is_rebased_and_retried(origin: Origin) -> None:
    a, b = origin.clone("a"), origin.clone("b")
    _race(a, _bump_from(b, "production", V2, once=origin.tmp / "once"))
    outcome = commands.bump(a.repo(), "staging", parse_image(V1), "g")
    assert outcome.pushed and outcome.attempts == 2
    assert origin.log()[:2] == [
        "deploy(staging): model v1 ghcr.io/conveyor-org/conveyor:1-aaaaaaa",
        "deploy(production): model v2 ghcr.io/conveyor-org/conveyor:2-bbbbbbb",
    ]
    assert rendered_image(origin, "staging") == V1 and rendered_image(origin, "production") == V2


def test_a_concurrent_bump_of_the_same_environment_is_built_upon_not_overwritten(origin: Origin) -> None:
    a, b = origin.clone("a"), origin.clone("b")
    _race(a, _bump_from(b, "staging", V2, once=origin.tmp / "once"))
    outcome = commands.bump(a.repo(), "staging", parse_image(V3), "g")
    assert outcome.attempts == 2
    assert origin.log()[:2] == [
        "deploy(staging): model v3 ghcr.io/conveyor-org/conveyor:3-ccccccc",
        "deploy(staging): model v2 ghcr.io/conveyor-org/conveyor:2-bbbbbbb",
    ]
    assert rendered_image(origin, "staging") == V3
    b.ok("rollback", "--env", "staging")
    assert rendered_image(origin, "staging") == V2, "the history is linear: one rollback returns to b's bump"


V4, V5 = image(4, "d"), image(5, "e")


def test_a_bump_that_would_lower_the_model_version_is_refused(origin: Origin) -> None:
    ci = origin.clone("ci")
    ci.ok("bump", "--env", "staging", "--image", V5)
    before = origin.log()
    done = ci.deploy("bump", "--env", "staging", "--image", V4)
    assert done.returncode == 2
    assert "staging runs model v5, newer than v4" in done.stderr and "conveyor deploy rollback" in done.stderr
    assert origin.log() == before and rendered_image(origin, "staging") == V5
    assert git(ci.root, "status", "--porcelain") == "" and git(ci.root, "rev-parse", "HEAD") == git(
        origin.bare, "rev-parse", "main"
    )


def test_a_promotion_that_would_lower_production_is_refused(origin: Origin) -> None:
    ci = origin.clone("ci")
    ci.ok("bump", "--env", "staging", "--image", V4)
    ci.ok("bump", "--env", "production", "--image", V5)
    before = origin.log()
    done = ci.deploy("promote", "--from", "staging", "--to", "production")
    assert done.returncode == 2 and "production runs model v5, newer than v4" in done.stderr
    assert origin.log() == before and rendered_image(origin, "production") == V5


def test_a_racing_bump_replayed_on_a_newer_remote_is_refused_not_pushed(origin: Origin) -> None:
    """Two retrains: v5 lands while v4's push is under way; the retry re-reads the tip and refuses v4."""
    a, b = origin.clone("a"), origin.clone("b")
    _race(a, _bump_from(b, "staging", V5, once=origin.tmp / "once"))
    with pytest.raises(ConveyorError, match=r"staging runs model v5, newer than v4"):
        commands.bump(a.repo(), "staging", parse_image(V4), "g")
    assert origin.log()[0] == "deploy(staging): model v5 ghcr.io/conveyor-org/conveyor:5-eeeeeee"
    assert not any("model v4" in subject for subject in origin.log())
    assert rendered_image(origin, "staging") == V5
    assert git(a.root, "status", "--porcelain") == ""


def test_a_remote_that_keeps_moving_is_given_up_on_after_the_configured_attempts(origin: Origin) -> None:
    a, b = origin.clone("a"), origin.clone("b")
    counter = origin.tmp / "pushes"
    _race(
        a,
        f'n=$(cat "{counter}" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "{counter}"; '
        f'cd "{b.root}" && "{CONVEYOR}" deploy bump --env production '
        f"--image ghcr.io/conveyor-org/conveyor:$n-$(printf '%07d' $n)@sha256:$(printf '%064d' $n) >&2",
    )
    repo = a.repo()
    with pytest.raises(ConveyorError, match=r"origin/main moved during each of 3 attempts"):
        commands.bump(repo, "staging", parse_image(V1), "g")
    assert int(counter.read_text()) == repo.settings.deploy.push_attempts == 3
    assert not any("deploy(staging)" in s for s in origin.log())
    assert git(a.root, "status", "--porcelain") == ""
    assert (
        git(a.root, "log", "-1", "--format=%s") != "deploy(staging): model v1 ghcr.io/conveyor-org/conveyor:1-aaaaaaa"
    )


def _together(*runners: tuple[Clone, str, str]) -> list[tuple[str, str, int]]:
    """`conveyor deploy bump` started in each clone at the same moment: (stdout, stderr, exit code) each."""
    started = [
        subprocess.Popen(
            [CONVEYOR, "deploy", "bump", "--env", env, "--image", ref],
            cwd=clone.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for clone, env, ref in runners
    ]  # fmt: skip
    return [(*p.communicate(timeout=120), p.returncode) for p in started]


def test_two_bumps_started_together_both_land_in_order(origin: Origin) -> None:
    """Two CI runners bump at the same moment: both commits reach the origin, one after the other."""
    results = _together((origin.clone("one"), "staging", V1), (origin.clone("two"), "production", V2))
    assert [code for _, _, code in results] == [0, 0], results
    assert sorted(origin.log()[:2]) == [
        "deploy(production): model v2 ghcr.io/conveyor-org/conveyor:2-bbbbbbb",
        "deploy(staging): model v1 ghcr.io/conveyor-org/conveyor:1-aaaaaaa",
    ]
    assert git(origin.bare, "rev-list", "--merges", "--count", "main") == "0"
    assert rendered_image(origin, "staging") == V1 and rendered_image(origin, "production") == V2


def test_two_bumps_of_one_environment_started_together_leave_the_newer_model(origin: Origin) -> None:
    """Whichever lands first, staging ends on v2: v1 after v2 is refused, v2 after v1 is built upon."""
    (_, older_err, older), (_, _, newer) = _together(
        (origin.clone("one"), "staging", V1), (origin.clone("two"), "staging", V2)
    )
    assert newer == 0
    assert older == 0 or "staging runs model v2, newer than v1" in older_err
    assert origin.log()[0] == "deploy(staging): model v2 ghcr.io/conveyor-org/conveyor:2-bbbbbbb"
    assert git(origin.bare, "rev-list", "--merges", "--count", "main") == "0"
    assert rendered_image(origin, "staging") == V2


# The rollback replay: Argo CD's notification controller evaluating argocd/notifications.yaml on the successive
# states of the staging Application, answered as rollback.yml answers it, against a real git origin.
NOTIFICATIONS = ROOT / "argocd" / "notifications.yaml"
REVISION_FIELD = re.compile(r'"revision": "(?P<value>[^"]*)"')


def app_state(sync_status: str, sync_revision: str, synced: str, phase: str, rollout: str) -> dict[str, Any]:
    """The Application fields the triggers read: status.sync (moved on refresh), the last operation's syncResult
    (moved only when a sync applies a revision) and the Rollout's own health among the resources."""
    return {
        "app": {
            "metadata": {"name": "conveyor-staging", "labels": {"conveyor.dev/environment": "staging"}},
            "status": {
                "sync": {"status": sync_status, "revision": sync_revision},
                "health": {"status": "Degraded"},
                "operationState": {"phase": phase, "syncResult": {"revision": synced}},
                "resources": [
                    {"group": "argoproj.io", "kind": "Rollout", "name": "conveyor", "health": {"status": rollout}},
                    {"group": "autoscaling", "kind": "HorizontalPodAutoscaler", "name": "conveyor"},
                ],
            },
        }
    }


def revision_sent(template: str, env: dict[str, Any]) -> str:
    """The `revision` a template's body renders to (Go templates: a missing map key prints `<no value>`; the
    `with` form prints nothing)."""
    value = REVISION_FIELD.search(template)["value"]
    status = env["app"]["status"]
    synced = (status.get("operationState") or {}).get("syncResult") or {}
    if value == contract.SYNCED_REVISION:
        return synced.get("revision") or ""
    if value == "{{.app.status.sync.revision}}":
        return status["sync"].get("revision", "<no value>")
    if value == "{{.app.status.operationState.syncResult.revision}}":
        return synced.get("revision", "<no value>")
    raise AssertionError(f"unknown revision field {value!r}")


class Notifier:
    """notifications-engine's controller loop for one Application and destination (pkg/triggers/service.go,
    pkg/controller/state.go): a `when` that errors does not trigger; a triggered condition is sent once per
    oncePer value and its key is kept."""

    def __init__(self, config: dict[str, str]) -> None:
        self.data = config
        self.sent: set[str] = set()

    def events(self, env: dict[str, Any]) -> list[tuple[str, str]]:
        out = []
        for key in sorted(k for k in self.data if k.startswith("trigger.")):
            for i, condition in enumerate(yaml.safe_load(self.data[key])):
                try:
                    triggered = expr.evaluate(condition["when"], env) is True
                except expr.ExprError:
                    triggered = False
                if not triggered:
                    continue
                once = ""
                if condition.get("oncePer"):
                    try:
                        value = expr.evaluate(condition["oncePer"], env)
                        once = "<nil>" if value is None else str(value)
                    except expr.ExprError:
                        once = ""
                state_key = f"{once}:{key}:[{i}]"
                if state_key in self.sent:
                    continue
                self.sent.add(state_key)
                for template in condition["send"]:
                    out.append((template, revision_sent(self.data[f"template.{template}"], env)))
        return out


def test_the_rollback_replay_reverts_once(origin: Origin) -> None:
    """Degraded at the deploy R, then at its revert V while that syncs, then at an unrelated commit U: one revert."""
    ci = origin.clone("ci")
    ci.ok("bump", "--env", "staging", "--image", V1)
    ci.ok("bump", "--env", "staging", "--image", V2)
    r = git(origin.bare, "rev-parse", "main")
    config = next(d for d in yaml.safe_load_all(NOTIFICATIONS.read_text()) if d)["data"]
    notifier = Notifier(config)
    answers: list[tuple[str, int, str]] = []

    def answer(env: dict[str, Any]) -> None:
        for template, revision in notifier.events(env):
            if not re.fullmatch(r"[0-9a-f]{40}", revision):  # rollback.yml refuses a dispatch without a revision
                answers.append((template, -1, revision))
                continue
            runner = origin.clone(f"rollback-{len(answers)}")
            done = runner.deploy("rollback", "--env", "staging", "--revision", revision, "--reason", template)
            answers.append((template, done.returncode, done.stdout + done.stderr))

    # 1. R synced, its canary aborted; the sync also failed (its hook waits on health): two dispatches for R.
    answer(app_state("Synced", r, r, "Failed", "Degraded"))
    v = git(origin.bare, "rev-parse", "main")
    assert v != r and origin.log()[0] == f'Revert "deploy(staging): model v2 {V2.split("@")[0]}"'
    # 2. Argo CD refreshed: status.sync names V before anything is applied; the Rollout is still aborted.
    answer(app_state("OutOfSync", v, r, "Failed", "Degraded"))
    # 3. Syncing V, the Rollout not yet settled.
    answer(app_state("Synced", v, v, "Running", "Degraded"))
    # 4. An unrelated commit lands while the Rollout still reads Degraded.
    other = origin.clone("docs")
    (other.root / "NOTES.md").write_text("unrelated\n")
    git(other.root, "add", "NOTES.md")
    git(other.root, "commit", "--quiet", "-m", "docs: an unrelated change")
    git(other.root, "push", "--quiet", "origin", "HEAD:main")
    u = git(origin.bare, "rev-parse", "main")
    answer(app_state("Synced", u, u, "Succeeded", "Degraded"))

    reverts = [s for s in origin.log() if s.startswith("Revert")]
    assert len(reverts) == 1, (reverts, answers)
    assert rendered_image(origin, "staging") == V1, "back to the release before R, not two versions back"
    assert [a[1] for a in answers] == [0, 0, 2, 2], answers  # R reverted; R again: superseded; V and U refused
    assert all("rolling back a rollback" in a[2] or "refusing" in a[2] for a in answers[2:]), answers


def test_rollback_refuses_a_revision_whose_release_is_a_rollback(origin: Origin) -> None:
    ci = origin.clone("ci")
    ci.ok("bump", "--env", "staging", "--image", V1)
    ci.ok("bump", "--env", "staging", "--image", V2)
    ci.ok("rollback", "--env", "staging")
    revert = git(origin.bare, "rev-parse", "main")
    done = origin.clone("again").deploy("rollback", "--env", "staging", "--revision", revert)
    assert done.returncode == 2 and "refusing to roll back a rollback" in done.stderr
    assert rendered_image(origin, "staging") == V1
