"""`conveyor ci ...`: the GitHub Actions helpers (imported at every CLI start: the work is imported lazily)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.paths import EXPORTED_METADATA, REPORTS

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _data(args: argparse.Namespace) -> int:
    if args.direction == "commit":
        return _data_commit(args)
    from conveyor.ci import data
    from conveyor.config import load_settings

    data.pull(load_settings(args.params)) if args.direction == "pull" else data.push()
    return 0


def _data_commit(args: argparse.Namespace) -> int:
    from conveyor.ci import batch, github
    from conveyor.config import load_settings
    from conveyor.deploy.git import Git

    outcome = batch.commit(load_settings(args.params), Git.discover(Path.cwd()), None if args.no_push else args.remote)
    print(outcome.summary)
    github.write_outputs(outcome.outputs())
    return 0


def _gate_outputs(args: argparse.Namespace) -> int:
    from conveyor.ci import github

    outputs = github.gate_outputs(REPORTS, EXPORTED_METADATA, args.sha, args.registry, args.owner)
    github.write_outputs(outputs)
    github.write_summary(github.gate_report(REPORTS)[1])
    return 0


def _comment(args: argparse.Namespace) -> int:
    from conveyor.ci import comment

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(comment.render(args.baseline, args.run_url))
    print(f"wrote {args.out}")
    return 0


def _pinned(args: argparse.Namespace) -> str:
    """The image the environment's release file pins, as a string with its digest."""
    from conveyor.config import load_settings
    from conveyor.deploy import commands
    from conveyor.deploy.git import Git

    repo = commands.Repo(git=Git.discover(Path.cwd()), settings=load_settings(args.params), remote=None)
    return str(repo.current(args.env).image)


def _wait_healthy(args: argparse.Namespace) -> int:
    from conveyor.ci import argocd
    from conveyor.config import load_settings

    settings = load_settings(args.params)
    image = _pinned(args)
    server = argocd.Server.from_env()
    app = f"{argocd.APP_PREFIX}{args.env}"
    print(f"waiting for {app} to run {image}")
    digest = image.rpartition("@")[2]
    argocd.wait(
        lambda: server.application(app), digest, settings.deploy.healthy_timeout_s, settings.deploy.healthy_poll_s
    )
    return 0


def _expect(args: argparse.Namespace) -> int:
    from conveyor.errors import ConveyorError

    pinned = _pinned(args)
    if pinned != args.image:
        raise ConveyorError(
            f"{args.env} now pins {pinned}, not the verified {args.image}; the newer deploy's own run promotes it."
        )
    print(f"{args.env} still pins {pinned}")
    return 0


def _registry_alias(args: argparse.Namespace) -> int:
    from conveyor.ci import aliases
    from conveyor.config import load_settings
    from conveyor.deploy.git import Git

    print(aliases.follow(load_settings(args.params), Git.discover(Path.cwd()), args.env))
    return 0


def add_commands(commands: Commands) -> None:
    actions = commands.group("ci", "helpers the GitHub Actions workflows call")

    data = actions.add(
        "data",
        "pull the data from DVC_REMOTE_URL (or, data.source demo, fetch it); push it; or commit the next batch as a "
        "data version (ingest, dvc commit and push, a `data:` git commit pushed to --remote)",
        _data,
    )
    data.add_argument("direction", choices=["pull", "push", "commit"])
    data.add_argument("--remote", default="origin", help="commit: the git remote to push the data commit to")
    data.add_argument("--no-push", action="store_true", help="commit: make the data commit locally, push nothing")

    outputs = actions.add("gate-outputs", "job outputs and step summary from the gate's reports", _gate_outputs)
    outputs.add_argument("--registry", default=None, help="e.g. ghcr.io; with --owner and --sha, adds `image`")
    outputs.add_argument("--owner", default=None, help="the image's owner (the repository owner)")
    outputs.add_argument("--sha", default=os.environ.get("GITHUB_SHA"), help="the commit built (default: $GITHUB_SHA)")

    comment = actions.add("comment", "the pull-request comment: gate table and dvc metrics diff", _comment)
    comment.add_argument("--baseline", type=Path, required=True, help="folder with main's latest reports/*.json")
    comment.add_argument("--out", type=Path, required=True, help="where to write the Markdown")
    comment.add_argument("--run-url", default=None, help="link to the run's reports")

    wait = actions.add("wait-healthy", "wait until Argo CD runs the pinned image, Synced and Healthy", _wait_healthy)
    wait.add_argument("--env", required=True, help="environment, one of params.yaml deploy.environments")

    alias = actions.add(
        "registry-alias",
        "move the environment's MLflow alias (champion for the last environment) to the version it now pins",
        _registry_alias,
    )
    alias.add_argument("--env", required=True, help="environment, one of params.yaml deploy.environments")

    expect = actions.add("expect", "fail unless an environment still pins the given image", _expect)
    expect.add_argument("--env", required=True)
    expect.add_argument("--image", required=True, help="the pinned reference that was verified")
