"""The data step of a workflow, as params.yaml `data.source` says.

The remote is the repository variable DVC_REMOTE_URL (credentials come from the environment, as DVC reads
them). It is added to .dvc/config.local, so nothing committed changes. With `data.source: dvc` the remote is
required and the data is pulled, then checked (`conveyor data prepare`): nothing else writes into data/. With
`demo`, a remote is pulled from when set, else the demo data is fetched: byte for byte what data.dvc records."""

from __future__ import annotations

import os
import subprocess

from conveyor.config import Settings
from conveyor.data import prepare
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


def pull(settings: Settings) -> None:
    source = settings.data.source
    if source == "dvc" and not os.environ.get(REMOTE_ENV, "").strip():
        raise ConveyorError(
            f"{REMOTE_ENV} is not set, and data.source = 'dvc' has nowhere else to get the data from; set it (a "
            "repository variable on GitHub, the conveyor-dvc-remote Secret on Argo) to the DVC remote holding it."
        )
    if remote() is None:
        print(f"{REMOTE_ENV} is not set: data.source = {source!r}, fetching the demo data", flush=True)
    else:
        _run("dvc", "pull", "data.dvc")
        if source == "demo":
            return
    print(prepare.prepare(settings))


def push() -> None:
    """Push the data and the pipeline's cached outputs, so the data version a model records can be pulled."""
    if remote() is None:
        print(f"{REMOTE_ENV} is not set: nothing to push")
        return
    _run("dvc", "push")
