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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.cli import Commands


def _render(args: argparse.Namespace) -> int:
    from conveyor.argo import render
    from conveyor.config import load_settings

    root = Path.cwd()
    files = render.render(load_settings(args.params), root)
    if args.check:
        stale = render.stale(files, root)
        for path in stale:
            print(f"{path} is stale: run `conveyor argo render` and commit it.", file=sys.stderr)
        if not stale:
            print(f"{render.OUTPUT_DIR}: up to date ({len(files)} files)")
        return 1 if stale else 0
    render.write(files, root)
    for path in files:
        print(f"wrote {path}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from conveyor.argo import submit
    from conveyor.config import load_settings

    settings = load_settings(args.params)
    outcome = submit.run(
        submit.Server.from_env(settings.argo.namespace),
        revision=args.revision or settings.argo.revision,
        timeout=args.timeout if args.timeout is not None else float(settings.argo.deadline_seconds),
        poll=args.poll if args.poll is not None else settings.argo.poll_seconds,
    )
    return 0 if outcome.passed else 1


def add_commands(commands: Commands) -> None:
    argo = commands.group("argo", "the pipeline on Argo Workflows")
    render = argo.add("render", "write k8s/argo-workflows/ from dvc.yaml and params.yaml", _render)
    render.add_argument("--check", action="store_true", help="exit 1 if the committed files are stale")
    submit = argo.add("submit", "run the WorkflowTemplate on an Argo Server and fetch the gate", _submit)
    submit.add_argument("--revision", default=None, help="git revision to train (default: params.yaml argo.revision)")
    submit.add_argument("--timeout", type=float, default=None, help="seconds to wait (default: argo.deadline_seconds)")
    submit.add_argument("--poll", type=float, default=None, help="seconds between polls (default: argo.poll_seconds)")
