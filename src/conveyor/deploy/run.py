"""Carries out `conveyor deploy <action>` from parsed arguments and prints one line per outcome."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from conveyor.config import load_settings
from conveyor.deploy import commands, status
from conveyor.deploy.git import Git
from conveyor.deploy.image import parse_image
from conveyor.errors import ConveyorError


def main(args: argparse.Namespace) -> int:
    git = Git.discover(Path.cwd())
    settings = load_settings(args.params)
    if args.action == "status":
        rows = status.table(git, settings)
        print(json.dumps([r.as_dict() for r in rows], indent=2) if args.json else status.render(rows))
        return 0
    repo = commands.Repo(git=git, settings=settings, remote=None if args.no_push else args.remote)
    if args.action == "bump":
        outcome = commands.bump(repo, args.env, parse_image(args.image), args.gate_report)
    elif args.action == "promote":
        order = settings.deploy.environments
        source = args.source or order[0]
        target = args.target or _after(order, source)
        outcome = commands.promote(repo, source, target)
    else:
        outcome = commands.rollback(repo, args.env, args.to_version, args.revision, args.reason)
    where = f" and pushed to {repo.remote}" if outcome.pushed else ""
    done = f"committed {outcome.commit[:12]}{where}: " if outcome.commit else ""
    print(f"{done}{outcome.summary}")
    return 0


def _after(order: list[str], source: str) -> str:
    if source not in order or order.index(source) + 1 >= len(order):
        raise ConveyorError(f"--from {source!r} has no next environment in deploy.environments; pass --to.")
    return order[order.index(source) + 1]
