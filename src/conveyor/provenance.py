"""Where a model came from: the git commit, the data version (the md5 DVC records in data.dvc), and the record
`conveyor train` leaves in artifacts/train.json for the later steps."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from conveyor.errors import ConveyorError
from conveyor.paths import TRAIN_INFO

DATA_DVC = Path("data.dvc")
# Tracked files the pipeline itself rewrites while it runs: `dvc repro` records each finished stage in dvc.lock
# before train reads the tree. They are what a run produced, not what it came from, so they never make it dirty.
PIPELINE_WRITES = ("dvc.lock",)


def git_commit() -> str:
    """HEAD's full sha, with '-dirty' when tracked files other than the pipeline's own records (dvc.lock) differ
    from it, data.dvc included: then `git checkout <sha> && dvc pull` would not give back what was trained.
    'unknown' outside git."""
    excluded = [f":(top,exclude){name}" for name in PIPELINE_WRITES]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", *excluded], check=False).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.strip() + ("-dirty" if dirty else "")


def data_version(dvc_file: Path = DATA_DVC) -> str:
    """The md5 of the tracked data directory as data.dvc records it."""
    if not dvc_file.exists():
        return "untracked"
    outs = yaml.safe_load(dvc_file.read_text()).get("outs") or [{}]
    return str(outs[0].get("md5", "untracked"))


def read_train_info() -> dict[str, Any]:
    """What the train step recorded (run id, git commit, data version); later steps log into the same run."""
    if not TRAIN_INFO.exists():
        raise ConveyorError(f"{TRAIN_INFO}: missing; run `conveyor train` first.")
    return json.loads(TRAIN_INFO.read_text())
