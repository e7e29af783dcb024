"""`conveyor deploy bump|promote|rollback|status` (imported whenever the CLI starts: the work is imported lazily)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.config import load_settings
from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--remote", default="origin", help="the remote Argo CD reads (default: origin)")
    parser.add_argument("--no-push", action="store_true", help="commit locally only; push nothing")


def add_commands(commands: Commands) -> None:
    actions = commands.group("deploy", "change an environment by a git commit")

    bump = actions.add("bump", "pin an environment to a new image (one deploy commit)", _run)
    bump.add_argument("--env", required=True, help="environment, one of params.yaml deploy.environments")
    bump.add_argument("--image", required=True, help="<registry>/<owner>/conveyor:<version>-<sha7>@sha256:<digest>")
    bump.add_argument("--gate-report", default="reports/gate.md", help="URL (or path) of the gate report")
    _common(bump)

    promote = actions.add("promote", "give the next environment what the previous one runs", _run)
    promote.add_argument("--from", dest="source", default=None, help="default: the first environment")
    promote.add_argument("--to", dest="target", default=None, help="default: the one after --from")
    _common(promote)

    rollback = actions.add("rollback", "git revert an environment's last deploy commit", _run)
    rollback.add_argument("--env", required=True)
    rollback.add_argument("--to", dest="to_version", type=int, default=None, help="go back to this model version")
    rollback.add_argument(
        "--revision", default=None, help="the revision that failed; nothing happens if a newer deploy replaced it"
    )
    rollback.add_argument("--reason", default=None, help="recorded as the Rollback-Reason trailer")
    _common(rollback)

    status = actions.add("status", "what each environment runs, and the commit that put it there", _run)
    status.add_argument("--json", action="store_true", help="print JSON")


def _run(args: argparse.Namespace) -> int:
    from conveyor.deploy import commands, status
    from conveyor.deploy.git import Git
    from conveyor.deploy.image import parse_image

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
