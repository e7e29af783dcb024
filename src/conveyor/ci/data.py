"""The data step of a workflow: `dvc pull` from the team's remote when one is configured, else the demo fetch.

The remote is the repository variable DVC_REMOTE_URL (credentials come from the environment, as DVC reads
them). It is added to .dvc/config.local, so nothing committed changes. Without it, the demo data is fetched:
byte for byte what data.dvc records, which `dvc status` confirms."""

from __future__ import annotations

import os
import subprocess

from conveyor.errors import ConveyorError

REMOTE_ENV = "DVC_REMOTE_URL"
REMOTE_NAME = "ci"


def _run(*cmd: str) -> None:
    print(f"$ {' '.join(cmd)}", flush=True)
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        raise ConveyorError(f"`{' '.join(cmd)}` exited {done.returncode}; its output is above.")


def remote() -> str | None:
    url = os.environ.get(REMOTE_ENV, "").strip()
    if not url:
        return None
    _run("dvc", "remote", "add", "--local", "--force", "--default", REMOTE_NAME, url)
    return url


def pull() -> None:
    if remote() is None:
        print(f"{REMOTE_ENV} is not set: fetching the demo data")
        _run("conveyor", "data", "fetch")
        _run("dvc", "status", "data.dvc")
        return
    _run("dvc", "pull", "data.dvc")


def push() -> None:
    """Push the data and the pipeline's cached outputs, so the data version a model records can be pulled."""
    if remote() is None:
        print(f"{REMOTE_ENV} is not set: nothing to push")
        return
    _run("dvc", "push")
