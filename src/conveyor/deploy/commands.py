"""bump, promote, rollback and status: every environment change is one git commit, pushed to the remote.

Each change runs as a transaction against the remote: fetch, fast-forward, derive the change from the tip,
commit, push. When the push is refused because the remote moved, the commit is dropped and the change is
derived again from the new tip (a rebase that re-reads the state, so a concurrent deploy to the same
environment is built upon, never overwritten), at most `deploy.push_attempts` times. A bump or promotion that
would lower the environment's model version (two retrains racing, v4 landing after v5) is refused: only
`rollback` moves an environment back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from conveyor.config import Settings
from conveyor.deploy import history, release
from conveyor.deploy.git import Git, GitFailed
from conveyor.deploy.image import ImageRef
from conveyor.deploy.release import Release
from conveyor.errors import ConveyorError


@dataclass(frozen=True)
class Outcome:
    environment: str
    commit: str | None  # None: the environment already ran it, nothing was committed
    summary: str
    pushed: bool
    attempts: int


@dataclass(frozen=True)
class Repo:
    git: Git
    settings: Settings
    remote: str | None  # None: commit locally, push nothing
    overlays: Path = release.OVERLAYS

    def path(self, environment: str) -> Path:
        """The environment's release file, relative to the repository root."""
        if environment not in self.settings.deploy.environments:
            known = ", ".join(self.settings.deploy.environments)
            raise ConveyorError(f"environment {environment!r} is not in deploy.environments; known: {known}.")
        path = release.release_path(environment, self.overlays)
        if not (self.git.root / path).is_file():
            raise ConveyorError(f"environment {environment!r} has no release file at {path}.")
        return path

    def current(self, environment: str) -> Release:
        return release.read(self.git.root / self.path(environment))

    def write(self, environment: str, new: Release) -> None:
        text = release.render(new, mlflow_ui=self.settings.deploy.mlflow_ui, model_name=self.settings.model.name)
        (self.git.root / self.path(environment)).write_text(text)


Change = Callable[[Repo], tuple[str | None, str]]


def transact(repo: Repo, environment: str, change: Change) -> Outcome:
    """Apply `change` on the remote's tip and push it, retrying when the remote moved meanwhile."""
    git = repo.git
    repo.path(environment)
    dirty = git.dirty()
    if dirty:
        raise ConveyorError(
            f"the working tree has uncommitted changes ({', '.join(dirty[:3])}); commit or stash them first."
        )
    branch = git.branch()
    if repo.remote is not None and not git.has_remote(repo.remote):
        raise ConveyorError(f"remote {repo.remote!r} does not exist; add it or pass --no-push.")
    attempts = repo.settings.deploy.push_attempts
    for attempt in range(1, attempts + 1):
        base = _sync(repo, branch)
        commit, summary = change(repo)
        if commit is None or repo.remote is None:
            return Outcome(environment, commit, summary, pushed=False, attempts=attempt)
        pushed = git.run("push", "--quiet", repo.remote, f"HEAD:refs/heads/{branch}", check=False)
        if pushed.returncode == 0:
            return Outcome(environment, commit, summary, pushed=True, attempts=attempt)
        git.run("fetch", "--quiet", repo.remote, branch)
        moved = git.out("rev-parse", "FETCH_HEAD") != base
        git.run("reset", "--quiet", "--hard", base)  # drop the commit: the tree was clean before it
        if not moved:
            said = pushed.stderr.strip().splitlines()
            raise GitFailed(
                f"pushing to {repo.remote}/{branch} failed, nothing was pushed: {said[-1] if said else 'no reason'}."
            )
    raise ConveyorError(
        f"{repo.remote}/{branch} moved during each of {attempts} attempts (deploy.push_attempts); "
        f"nothing was pushed, run the command again."
    )


def _sync(repo: Repo, branch: str) -> str:
    """Bring the branch to the remote's tip (fast-forward only); return the commit the change builds on."""
    git = repo.git
    if repo.remote is None:
        return git.head()
    git.run("fetch", "--quiet", repo.remote, branch)
    tip = git.out("rev-parse", "FETCH_HEAD")
    if git.run("merge-base", "--is-ancestor", "HEAD", tip, check=False).returncode != 0:
        raise ConveyorError(
            f"{branch} has commits that are not on {repo.remote}/{branch}; push or drop them before deploying."
        )
    git.run("merge", "--quiet", "--ff-only", tip)
    return tip


def _set(environment: str, new: Release) -> Change:
    """The change that makes `environment` run `new`: one deploy commit, or none if it already does."""

    def change(repo: Repo) -> tuple[str | None, str]:
        now = repo.current(environment)
        if now.image == new.image:
            return None, f"{environment} already runs model v{now.model_version} {now.image}; nothing to commit."
        if new.model_version < now.model_version:  # a bump that lost a race, replayed on the newer tip
            raise ConveyorError(
                f"{environment} runs model v{now.model_version}, newer than v{new.model_version}; a deploy never "
                f"moves an environment back: run `conveyor deploy rollback --env {environment}` for that."
            )
        repo.write(environment, Release(image=new.image, gate_report=new.gate_report))
        commit = repo.git.commit(history.message(environment, new), str(repo.path(environment)))
        return commit, f"{environment}: model v{new.model_version} {new.image}"

    return change


def bump(repo: Repo, environment: str, image: ImageRef, gate_report: str) -> Outcome:
    return transact(repo, environment, _set(environment, Release(image=image, gate_report=gate_report)))


def promote(repo: Repo, source: str, target: str) -> Outcome:
    order = repo.settings.deploy.environments
    repo.path(source)
    repo.path(target)
    if order.index(target) <= order.index(source):
        raise ConveyorError(
            f"--to {target} does not come after --from {source} in deploy.environments ({', '.join(order)})."
        )

    def change(r: Repo) -> tuple[str | None, str]:
        return _set(target, r.current(source))(r)

    return transact(repo, target, change)


def rollback(repo: Repo, environment: str, to_version: int | None, revision: str | None, reason: str | None) -> Outcome:
    """Revert the environment's last deploy commit (or all those above `to_version`) with `git revert`."""

    def change(r: Repo) -> tuple[str | None, str]:
        path = r.path(environment)
        now = r.current(environment)
        stack = history.standing(history.log(r.git, path))
        if revision is not None and _superseded(r, path, stack, revision):
            return None, (
                f"{environment} no longer runs what {revision[:12]} deployed (it runs model "
                f"v{now.model_version} {now.image}); nothing to roll back."
            )
        if revision is not None:
            _refuse_a_rollback(r, path, revision)
        if to_version == now.model_version:
            return None, f"{environment} already runs model v{now.model_version} {now.image}; nothing to commit."
        undo = _to_undo(r, environment, stack, to_version)
        reverted = r.git.run("revert", "--no-commit", *(c.sha for c in reversed(undo)), check=False)
        if reverted.returncode != 0:
            r.git.run("revert", "--abort", check=False)
            raise ConveyorError(f"git revert of {undo[-1].sha[:12]} did not apply cleanly; resolve it by hand.")
        restored = r.current(environment)
        commit = r.git.commit(history.revert_message(environment, undo, restored, reason))
        return commit, f"{environment}: back to model v{restored.model_version} {restored.image}"

    return transact(repo, environment, change)


def _superseded(repo: Repo, path: Path, stack: list[history.Commit], revision: str) -> bool:
    """True when the deploy in effect at `revision` (the one Argo CD reported) is no longer the latest."""
    done = repo.git.run("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", check=False)
    if done.returncode != 0:
        raise ConveyorError(f"--revision {revision!r} is not a commit of this repository.")
    then = history.standing(history.log(repo.git, path, done.stdout.strip()))
    return not then or not stack or then[-1].sha != stack[-1].sha


def _refuse_a_rollback(repo: Repo, path: Path, revision: str) -> None:
    """A failure reported at a revision whose release is a rollback is not answered with another rollback.

    Argo CD may report the failure again at the revert's own commit (the Rollout still Degraded while the revert
    syncs), or at a later unrelated commit: reverting "the last deploy" then would take the environment back a
    second version, past the release that was healthy before the failed one."""
    changes = history.log(repo.git, path, revision)
    if changes and changes[-1].reverts:
        raise ConveyorError(
            f"--revision {revision[:12]} runs the rollback {changes[-1].sha[:12]} ({changes[-1].subject!r}); "
            "refusing to roll back a rollback automatically: go further back by hand with --to VERSION."
        )


def _to_undo(repo: Repo, environment: str, stack: list[history.Commit], to_version: int | None) -> list[history.Commit]:
    """The commits to revert, oldest first: the top deploy, or every deploy above the named version."""
    path = repo.path(environment)
    if to_version is None:
        keep = len(stack) - 2
    else:
        found = [
            i for i, c in enumerate(stack[:-1]) if c.deploys(environment) and _version(repo, c, path) == to_version
        ]
        if not found:
            earlier = sorted({_version(repo, c, path) for c in stack[:-1] if c.deploys(environment)})
            listed = ", ".join(f"v{v}" for v in earlier) or "none"
            raise ConveyorError(
                f"--to {to_version}: {environment} never ran model v{to_version} in its standing history "
                f"(earlier deploys: {listed})."
            )
        keep = found[-1]
    undo = stack[keep + 1 :]
    if keep < 0 or not stack[keep].deploys(environment):
        raise ConveyorError(f"{environment} has no earlier deploy commit to roll back to.")
    blocking = [c for c in undo if not c.deploys(environment)]
    if blocking:
        raise ConveyorError(
            f"{blocking[-1].sha[:12]} ({blocking[-1].subject!r}) changed {path} without being a deploy commit; "
            "roll back past it by hand."
        )
    return undo


def _version(repo: Repo, commit: history.Commit, path: Path) -> int:
    text = repo.git.out("show", f"{commit.sha}:{path}")
    return release.parse(text, f"{commit.sha[:12]}:{path}").model_version
