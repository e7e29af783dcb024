"""`conveyor ci data commit`: the retrain's new data becomes a commit, the way a deploy is one.

Ingest the next batch, `dvc commit` it (data.dvc now records the new md5), `dvc push` it to the DVC remote, then
commit data.dvc as `data: batch N, <rows> rows` with the trailers Data-Version, Batch and Rows, and push that
commit. The DVC push comes first, so no pushed commit ever names data the remote lacks. Training then runs on that
commit: the model records its sha and the md5, and `git checkout <sha> && dvc pull` gives back the same data.

When the push is refused because the remote moved (a deploy commit landed meanwhile), the commit is made again on
the new tip, at most `deploy.push_attempts` times; when the new tip changed data.dvc itself, this batch was cut
from a data version that is no longer the latest, and nothing is pushed.

An exhausted incoming pool is a clean outcome: `train=false`, exit 0, nothing committed. Without a DVC remote
(DVC_REMOTE_URL unset: the demo fetch) the batch is ingested and `dvc commit`ted, so the model records the md5
it trained on, but no commit is made: nobody could `dvc pull` it, and the model's git_commit says `-dirty`."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from conveyor import provenance
from conveyor.ci import data
from conveyor.config import Settings
from conveyor.data import ingest
from conveyor.deploy.git import Git, GitFailed
from conveyor.errors import ConveyorError

DATA_DVC = str(provenance.DATA_DVC)


@dataclass(frozen=True)
class Outcome:
    train: bool  # False: no new data, nothing to train
    commit: str | None  # the data commit, or None when none was made
    data_version: str | None
    pushed: bool
    summary: str

    def outputs(self) -> dict[str, str]:
        return {
            "train": "true" if self.train else "false",
            "commit": self.commit or "",
            "data-version": self.data_version or "",
        }


def message(batch: ingest.Batch, version: str) -> str:
    return (
        f"data: batch {batch.number}, {batch.rows} rows\n\n"
        f"{batch.path.as_posix()} ingested and pushed to the DVC remote; the retrain trains on this commit.\n\n"
        f"Data-Version: {version}\nBatch: {batch.number}\nRows: {batch.rows}\n"
    )


def _dvc(*args: str) -> None:
    done = subprocess.run(["dvc", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise ConveyorError(f"`dvc {' '.join(args)}` exited {done.returncode}: {said[-1] if said else 'no output'}.")


def commit(settings: Settings, git: Git, remote: str | None) -> Outcome:
    """Ingest, record and push the next batch; `remote` None: commit nothing to git (the caller's --no-push)."""
    dirty = git.dirty()
    if dirty:
        raise ConveyorError(
            f"the working tree has uncommitted changes ({', '.join(dirty[:3])}); "
            "a data commit must contain data.dvc alone."
        )
    branch = git.branch()
    if remote is not None and not git.has_remote(remote):
        raise ConveyorError(f"git remote {remote!r} does not exist; expected the remote to push the data commit to.")
    try:
        batch = ingest.next_batch(settings)
    except ingest.NoNewData as exhausted:
        return Outcome(train=False, commit=None, data_version=None, pushed=False, summary=str(exhausted))
    _dvc("commit", "--force", "--quiet", DATA_DVC)
    version = provenance.data_version()
    if data.remote() is None:
        return Outcome(
            True,
            None,
            version,
            False,
            f"{batch.path} ({batch.rows} rows) recorded as {version}; {data.REMOTE_ENV} is not set, so it is "
            "neither pushed nor committed (nobody could pull it).",
        )
    _dvc("push", "--quiet", DATA_DVC)
    text = (git.root / DATA_DVC).read_text()
    base = git.head()
    git.run("add", "--", DATA_DVC)
    sha = git.commit(message(batch, version))
    done = f"data: batch {batch.number}, {batch.rows} rows, version {version}"
    if remote is None:
        return Outcome(True, sha, version, False, done)
    return _push(settings, git, remote, branch, base, text, batch, version, done)


def _push(
    settings: Settings,
    git: Git,
    remote: str,
    branch: str,
    base: str,
    text: str,
    batch: ingest.Batch,
    version: str,
    done: str,
) -> Outcome:
    """Push HEAD; when the remote moved, make the commit again on its tip, unless the tip recorded other data."""
    ours = git.out("show", f"{base}:{DATA_DVC}")
    attempts = settings.deploy.push_attempts
    for attempt in range(1, attempts + 1):
        pushed = git.run("push", "--quiet", remote, f"HEAD:refs/heads/{branch}", check=False)
        if pushed.returncode == 0:
            return Outcome(True, git.head(), version, True, f"{done} (pushed to {remote}/{branch})")
        git.run("fetch", "--quiet", remote, branch)
        tip = git.out("rev-parse", "FETCH_HEAD")
        if tip == base or attempt == attempts:
            git.run("reset", "--quiet", "--hard", base)
            if tip == base:
                said = pushed.stderr.strip().splitlines()
                raise GitFailed(
                    f"pushing to {remote}/{branch} failed, nothing was pushed: {said[-1] if said else 'no reason'}."
                )
            break
        theirs = git.run("show", f"{tip}:{DATA_DVC}", check=False).stdout.strip()
        if theirs != ours.strip():
            git.run("reset", "--quiet", "--hard", base)
            raise ConveyorError(
                f"{remote}/{branch} recorded another data version in {DATA_DVC} meanwhile; this batch was cut from "
                "the one before it, nothing was pushed: run the retrain again."
            )
        git.run("reset", "--quiet", "--hard", tip)
        (git.root / DATA_DVC).write_text(text)
        git.run("add", "--", DATA_DVC)
        git.commit(message(batch, version))
        base = tip
    raise ConveyorError(
        f"{remote}/{branch} moved during each of {attempts} attempts (deploy.push_attempts); "
        "nothing was pushed, run the retrain again."
    )
