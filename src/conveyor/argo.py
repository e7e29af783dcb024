"""`conveyor argo render|submit`: the dvc.yaml DAG on Argo Workflows.

render writes k8s/argo-workflows/ (a WorkflowTemplate, a CronWorkflow, RBAC) from dvc.yaml, params.yaml and the
train workflow's schedule; `--check` exits 1 when the committed files differ from a fresh render.
submit runs the WorkflowTemplate on the Argo Server named by ARGO_SERVER (token in ARGO_TOKEN), waits for it
and writes reports/gate.json and reports/gate.md from the gate task; it exits 0 only when the workflow
succeeded and the gate passed. This module is imported at every CLI start, so it imports the rest lazily."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    render = actions.add_parser("render", help="write k8s/argo-workflows/ from dvc.yaml and params.yaml")
    render.add_argument("--check", action="store_true", help="exit 1 if the committed files are stale")
    submit = actions.add_parser("submit", help="run the WorkflowTemplate on an Argo Server and fetch the gate")
    submit.add_argument("--revision", default=None, help="git revision to train (default: params.yaml argo.revision)")
    submit.add_argument("--timeout", type=float, default=None, help="seconds to wait (default: argo.deadline_seconds)")
    submit.add_argument("--poll", type=float, default=None, help="seconds between polls (default: argo.poll_seconds)")


def _render(args: argparse.Namespace) -> int:
    from conveyor import argo_render
    from conveyor.config import load_settings

    root = Path.cwd()
    files = argo_render.render(load_settings(args.params), root)
    if args.check:
        stale = argo_render.stale(files, root)
        for path in stale:
            print(f"{path} is stale: run `conveyor argo render` and commit it.", file=sys.stderr)
        if not stale:
            print(f"{argo_render.OUTPUT_DIR}: up to date ({len(files)} files)")
        return 1 if stale else 0
    argo_render.write(files, root)
    for path in files:
        print(f"wrote {path}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from conveyor import argo_submit
    from conveyor.config import load_settings

    settings = load_settings(args.params)
    outcome = argo_submit.run(
        argo_submit.Server.from_env(settings.argo.namespace),
        revision=args.revision or settings.argo.revision,
        timeout=args.timeout if args.timeout is not None else float(settings.argo.deadline_seconds),
        poll=args.poll if args.poll is not None else settings.argo.poll_seconds,
    )
    return 0 if outcome.passed else 1


def main(args: argparse.Namespace) -> int:
    return {"render": _render, "submit": _submit}[args.action](args)
