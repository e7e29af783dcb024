"""`conveyor manifests check`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from conveyor.config import load_settings

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _check(args: argparse.Namespace) -> int:
    from conveyor.manifests import check

    return check.run(load_settings(args.params))


def add_commands(commands: Commands) -> None:
    manifests = commands.group("manifests", "render and validate k8s/ and argocd/")
    manifests.add("check", "kustomize, core and CRD schemas, checkov, and the app contract", _check)
