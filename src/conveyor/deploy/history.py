"""Deploy commits and their reverts, read back from git: what each environment runs and how it got there."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from conveyor.deploy.git import Git
from conveyor.deploy.release import Release

SUBJECT = re.compile(r"^deploy\((?P<env>[a-z][a-z0-9-]*)\): model v(?P<version>[0-9]+) (?P<image>\S+)$")
REVERTS = re.compile(r"^This reverts commit (?P<sha>[0-9a-f]{40})\.?$", re.MULTILINE)
TRAILER = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9-]*): (?P<value>.+)$")
_FIELD, _RECORD = "\x1f", "\x1e"


@dataclass(frozen=True)
class Commit:
    sha: str
    date: str
    subject: str
    body: str

    @property
    def reverts(self) -> list[str]:
        return REVERTS.findall(self.body)

    def deploys(self, environment: str) -> bool:
        match = SUBJECT.match(self.subject)
        return match is not None and match["env"] == environment

    @property
    def trailers(self) -> dict[str, str]:
        last = self.body.strip().split("\n\n")[-1].splitlines()
        found = [TRAILER.match(line) for line in last]
        return {m["key"]: m["value"] for m in found if m} if all(found) else {}


def log(git: Git, path: Path, rev: str = "HEAD") -> list[Commit]:
    """Commits that changed `path`, oldest first."""
    text = git.out(
        "log", "--no-merges", "--reverse", f"--format=%H{_FIELD}%cI{_FIELD}%s{_FIELD}%B{_RECORD}", rev, "--", str(path)
    )
    commits = []
    for record in filter(None, (r.strip("\n") for r in text.split(_RECORD))):
        sha, date, subject, body = record.split(_FIELD, 3)
        commits.append(Commit(sha=sha, date=date, subject=subject, body=body))
    return commits


def standing(commits: list[Commit]) -> list[Commit]:
    """The commits still in effect, oldest first: each revert takes the commits it names off the stack.

    Its top is the change that produced the file as it is now, so reverting the top steps back exactly one
    environment change, and again from there.
    """
    stack: list[Commit] = []
    for commit in commits:
        undone = set(commit.reverts) & {c.sha for c in stack}
        if undone:
            stack = [c for c in stack if c.sha not in undone]
        else:
            stack.append(commit)
    return stack


def message(environment: str, release: Release) -> str:
    """The deploy commit message of the DESIGN contract."""
    return f"deploy({environment}): model v{release.model_version} {release.image.tagged}\n\n" + trailers(release)


def revert_message(environment: str, undone: list[Commit], restored: Release, reason: str | None) -> str:
    if len(undone) == 1:
        subject = f'Revert "{undone[0].subject}"'
    else:
        subject = f"Revert {len(undone)} deploys of {environment}: back to model v{restored.model_version}"
    body = "\n".join(f"This reverts commit {c.sha}." for c in undone)
    why = " ".join((reason or "").split())
    lines = trailers(restored) + (f"Rollback-Reason: {why}\n" if why else "")
    return f"{subject}\n\n{body}\n\n{lines}"


def trailers(release: Release) -> str:
    return (
        f"Model-Version: {release.model_version}\n"
        f"Image-Digest: {release.image.digest}\n"
        f"Gate-Report: {release.gate_report}\n"
    )
