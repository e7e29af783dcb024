"""`conveyor ci registry-alias --env <env>`: the MLflow alias follows what the environment's release file pins.

A deploy is a git commit (`conveyor deploy bump|promote|rollback`, git only: it never needs MLflow). The workflow
step after it moves the alias named for the environment to the model version the pushed release file pins:
`champion` for the last environment of deploy.environments (production), the environment's own name for the
others (`staging`). A rollback moves it back the same way. The champion is what evaluate compares a challenger
with, so a model deployed to production becomes the next retrain's bar.

Without MLFLOW_TRACKING_URI there is no shared registry to move an alias in (the embedded one lives for one run):
the step says so and succeeds, so it never blocks a git-only deploy."""

from __future__ import annotations

import os
from pathlib import Path

from conveyor.config import Settings
from conveyor.deploy import commands
from conveyor.deploy.git import Git
from conveyor.errors import ConveyorError
from conveyor.registry import tracking

URI_ENV = "MLFLOW_TRACKING_URI"


def alias_for(settings: Settings, environment: str) -> str:
    """`champion` for the last environment (production), the environment's name for the others."""
    return tracking.CHAMPION if environment == settings.deploy.environments[-1] else environment


def follow(settings: Settings, git: Git, environment: str) -> str:
    """Point the environment's alias at the version its release file pins; return what was done."""
    repo = commands.Repo(git=git, settings=settings, remote=None)
    path: Path = repo.path(environment)
    alias = alias_for(settings, environment)
    if not os.environ.get(URI_ENV, "").strip():
        return f"{URI_ENV} is not set: no shared registry, the {alias!r} alias is not moved; the deploy commit stands."
    version = repo.current(environment).model_version
    if version == 0:
        return f"{path} pins the placeholder model v0: no version to point {alias!r} at."
    if tracking.by_version(settings, version) is None:
        raise ConveyorError(
            f"{path} pins model v{version}, but {settings.model.name!r} has no version {version} at {URI_ENV}; "
            "expected a version the gate registered there."
        )
    before = tracking.by_alias(settings, alias)
    tracking.set_alias(settings, alias, version)
    was = f"v{before.version}" if before is not None else "unset"
    return f"{alias!r} -> {settings.model.name} v{version} (was {was}), as {path} pins for {environment}."
