"""A thin, typed wrapper over the git command line: the deploy commands change environments only by commits."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError

TIMEOUT = 120  # seconds for one git command: a fetch or push that hangs longer has lost its remote


class GitFailed(ConveyorError):
    """A git command exited non-zero; the message carries git's own last line."""


@dataclass(frozen=True)
class Git:
    root: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                ["git", *args], cwd=self.root, capture_output=True, text=True, check=False, timeout=TIMEOUT
            )
        except subprocess.TimeoutExpired:
            raise GitFailed(f"`git {' '.join(args)}` did not finish within {TIMEOUT} s.") from None
        if check and done.returncode != 0:
            said = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise GitFailed(f"`git {' '.join(args)}` failed: {said[-1] if said else done.returncode}.")
        return done

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.strip()

    @classmethod
    def discover(cls, where: Path) -> Git:
        done = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=where, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ConveyorError(f"{where} is not inside a git repository; deploys are git commits.")
        return cls(Path(done.stdout.strip()))

    def head(self) -> str:
        return self.out("rev-parse", "HEAD")

    def branch(self) -> str:
        name = self.out("rev-parse", "--abbrev-ref", "HEAD")
        if name == "HEAD":
            raise ConveyorError("HEAD is detached; check out the branch Argo CD follows before deploying.")
        return name

    def dirty(self) -> list[str]:
        """Tracked files with changes, staged or not: a deploy commit must contain nothing else."""
        lines = self.run("status", "--porcelain", "--untracked-files=no").stdout.splitlines()
        return [line[3:] for line in lines if line.strip()]

    def has_remote(self, remote: str) -> bool:
        return remote in self.out("remote").split()

    def commit(self, message: str, *paths: str) -> str:
        """Commit what is staged plus `paths`; the tree was clean, so that is the deploy change alone."""
        if paths:
            self.run("add", "--", *paths)
        self.run("commit", "--quiet", "-m", message)
        return self.head()
