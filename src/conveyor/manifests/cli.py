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


def _rules(args: argparse.Namespace) -> int:
    from pathlib import Path

    from conveyor.manifests import rules

    written = rules.write(Path.cwd(), load_settings(args.params))
    for path in written:
        print(f"wrote {path}")
    if not written:
        print("the alert rules are up to date with params.yaml")
    return 0


def add_commands(commands: Commands) -> None:
    manifests = commands.group("manifests", "render and validate k8s/ and argocd/")
    manifests.add("check", "kustomize, core and CRD schemas, checkov, and the app contract", _check)
    manifests.add("rules", "write the alert rules (k8s/monitoring/rules, the local stack's) from params.yaml", _rules)
