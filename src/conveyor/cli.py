"""`conveyor <step>`: one subcommand per pipeline step. dvc.yaml, the workflows and Argo call these."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError

# Each check step: (module, help). The module's run(settings) writes reports/<check>.json.
CHECK_STEPS: dict[str, tuple[str, str]] = {
    "validate": ("conveyor.checks.quality", "Great Expectations data-quality suite on the training data"),
    "drift": ("conveyor.checks.drift", "Evidently drift: newest batch against the training reference"),
    "evaluate": ("conveyor.evaluate", "holdout metrics, plots, and champion/challenger comparison"),
    "fairness": ("conveyor.checks.fairness", "fairlearn group metrics per sensitive feature"),
    "latency": ("conveyor.checks.latency", "in-process predict latency, throughput and load time"),
}
# Check steps whose failure must stop the pipeline at once, because later steps would consume bad input.
BLOCKING_STEPS = {"validate"}


def _call(module: str, function: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(importlib.import_module(module), function)(*args, **kwargs)


def _settings(args: argparse.Namespace) -> Any:
    from conveyor.config import load_settings

    return load_settings(args.params)


def _run_check(step: str) -> Callable[[argparse.Namespace], int]:
    module, _ = CHECK_STEPS[step]

    def run(args: argparse.Namespace) -> int:
        result = _call(module, "run", _settings(args))
        verdict = "passed" if result.passed else "FAILED"
        print(f"{result.check}: {verdict}")
        for failure in result.failures:
            print(f"  - {failure}", file=sys.stderr)
        for warning in result.warnings:
            print(f"  ! {warning}", file=sys.stderr)
        return 1 if (not result.passed and step in BLOCKING_STEPS) else 0

    return run


def _data_fetch(args: argparse.Namespace) -> int:
    for path in _call("conveyor.fetch", "fetch", _settings(args)):
        print(f"wrote {path}")
    return 0


def _data_ingest(args: argparse.Namespace) -> int:
    print(f"wrote {_call('conveyor.data', 'ingest', _settings(args))}")
    return 0


def _train(args: argparse.Namespace) -> int:
    info = _call("conveyor.train", "run", _settings(args))
    print(f"train: run {info['run_id']}")
    return 0


def _gate(args: argparse.Namespace) -> int:
    return 0 if _call("conveyor.gate", "run", _settings(args)) else 1


def _export(args: argparse.Namespace) -> int:
    return _call("conveyor.export_registry", "main", _settings(args), args)


def _serve(args: argparse.Namespace) -> int:
    _call("conveyor.serve.app", "serve", _settings(args), host=args.host, port=args.port)
    return 0


def _deploy(args: argparse.Namespace) -> int:
    return _call("conveyor.deploy.cli", "main", args)


def _manifests_check(args: argparse.Namespace) -> int:
    return _call("conveyor.deploy.check", "main", args)


def _argo(args: argparse.Namespace) -> int:
    return _call("conveyor.argo", "main", args)


def _ci(args: argparse.Namespace) -> int:
    return _call("conveyor.ci.cli", "main", args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conveyor", description=__doc__)
    parser.add_argument("--params", default=None, help="configuration file (default: params.yaml)")
    steps = parser.add_subparsers(dest="step", required=True, metavar="<step>")

    data = steps.add_parser("data", help="fetch the demo dataset or ingest a new batch")
    data_steps = data.add_subparsers(dest="action", required=True, metavar="<action>")
    data_steps.add_parser("fetch", help="write the demo data into data/").set_defaults(func=_data_fetch)
    data_steps.add_parser("ingest", help="add the next batch of new rows").set_defaults(func=_data_ingest)

    for step, (_, help_text) in CHECK_STEPS.items():
        steps.add_parser(step, help=help_text).set_defaults(func=_run_check(step))
    steps.add_parser("train", help="fit the model and log it to MLflow").set_defaults(func=_train)
    steps.add_parser("gate", help="read every check, register and export on pass").set_defaults(func=_gate)

    export = steps.add_parser("export", help="write models/ from a registered model version in MLflow")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--version", help="the registered model version to export")
    which.add_argument("--gate-report", type=Path, help="a passed reports/gate.json: export its model_version")
    export.set_defaults(func=_export)

    serve = steps.add_parser("serve", help="run the model API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=_serve)

    deploy = steps.add_parser("deploy", help="change an environment by a git commit")
    _call("conveyor.deploy.cli", "add_arguments", deploy)
    deploy.set_defaults(func=_deploy)

    manifests = steps.add_parser("manifests", help="render and validate k8s/ and argocd/")
    manifests_steps = manifests.add_subparsers(dest="action", required=True, metavar="<action>")
    manifests_steps.add_parser("check", help="kustomize, schemas, checkov, app cross-check").set_defaults(
        func=_manifests_check
    )

    argo = steps.add_parser("argo", help="the pipeline on Argo Workflows")
    _call("conveyor.argo", "add_arguments", argo)
    argo.set_defaults(func=_argo)

    ci = steps.add_parser("ci", help="helpers the GitHub Actions workflows call")
    _call("conveyor.ci.cli", "add_arguments", ci)
    ci.set_defaults(func=_ci)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConveyorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
