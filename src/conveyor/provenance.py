"""Where a model came from: the git commit and the data version (the md5 DVC records in data.dvc)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

DATA_DVC = Path("data.dvc")


def git_commit() -> str:
    """HEAD's full sha, with '-dirty' when tracked files differ from it; 'unknown' outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], check=False).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.strip() + ("-dirty" if dirty else "")


def data_version(dvc_file: Path = DATA_DVC) -> str:
    """The md5 of the tracked data directory as data.dvc records it."""
    if not dvc_file.exists():
        return "untracked"
    outs = yaml.safe_load(dvc_file.read_text()).get("outs") or [{}]
    return str(outs[0].get("md5", "untracked"))
