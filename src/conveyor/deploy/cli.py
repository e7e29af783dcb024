"""`conveyor deploy ...` arguments (kept light: imported whenever the CLI starts; the work is imported lazily)."""

from __future__ import annotations

import argparse


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--remote", default="origin", help="the remote Argo CD reads (default: origin)")
    parser.add_argument("--no-push", action="store_true", help="commit locally only; push nothing")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="<action>")

    bump = actions.add_parser("bump", help="pin an environment to a new image (one deploy commit)")
    bump.add_argument("--env", required=True, help="environment, one of params.yaml deploy.environments")
    bump.add_argument("--image", required=True, help="<registry>/<owner>/conveyor:<version>-<sha7>@sha256:<digest>")
    bump.add_argument("--gate-report", default="reports/gate.md", help="URL (or path) of the gate report")
    _common(bump)

    promote = actions.add_parser("promote", help="give the next environment what the previous one runs")
    promote.add_argument("--from", dest="source", default=None, help="default: the first environment")
    promote.add_argument("--to", dest="target", default=None, help="default: the one after --from")
    _common(promote)

    rollback = actions.add_parser("rollback", help="git revert an environment's last deploy commit")
    rollback.add_argument("--env", required=True)
    rollback.add_argument("--to", dest="to_version", type=int, default=None, help="go back to this model version")
    rollback.add_argument(
        "--revision", default=None, help="the revision that failed; nothing happens if a newer deploy replaced it"
    )
    rollback.add_argument("--reason", default=None, help="recorded as the Rollback-Reason trailer")
    _common(rollback)

    status = actions.add_parser("status", help="what each environment runs, and the commit that put it there")
    status.add_argument("--json", action="store_true", help="print JSON")


def main(args: argparse.Namespace) -> int:
    from conveyor.deploy import run

    return run.main(args)
