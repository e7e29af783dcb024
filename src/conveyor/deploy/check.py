"""`conveyor manifests check`: render k8s/ and argocd/, validate every object, run checkov, and cross-check
the manifests against the serving app and params.yaml. Exits 1 on any failure; prints what it checked."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conveyor.config import load_settings
from conveyor.deploy import contract, policy, validate
from conveyor.deploy.release import OVERLAYS
from conveyor.errors import ConveyorError

ARGOCD = Path("argocd")
WORKFLOWS = Path("k8s/argo-workflows")


def _stage(name: str, run: Callable[[], tuple[list[str], str]]) -> list[str]:
    """Run one stage, print its verdict and time, and return its failures."""
    start = time.perf_counter()
    try:
        failures, note = run()
    except ConveyorError as exc:
        failures, note = [str(exc)], ""
    took = time.perf_counter() - start
    verdict = f"FAILED ({len(failures)})" if failures else "ok"
    print(f"{name}: {verdict}{f' - {note}' if note else ''} [{took:.1f} s]")
    for failure in failures:
        print(f"  - {failure}", file=sys.stderr)
    return failures


def _crd_stage(root: Path, sources: list[validate.Source]) -> list[str]:
    """CRD objects against their JSON schemas; a skip, said plainly, only when no schema folder exists."""
    try:
        folder, origin = validate.schema_dir(root)
    except ConveyorError as exc:
        message = str(exc)
        return _stage("CRD schemas", lambda: ([message], ""))
    if folder is None:
        print(f"CRD schemas: SKIPPED - no schema folder found; set {validate.SCHEMA_ENV} (e.g. ../shared/schemas).")
        return []

    def run() -> tuple[list[str], str]:
        found, checked = validate.validate_crds(sources, folder)
        return found, f"{checked} Argo and Prometheus Operator objects against {origin}"

    return _stage("CRD schemas", run)


def main(args: argparse.Namespace) -> int:
    root = Path.cwd()
    settings = load_settings(args.params)
    start = time.perf_counter()
    rendered: dict[str, validate.Source] = {}
    others: list[validate.Source] = []

    def render() -> tuple[list[str], str]:
        for environment in settings.deploy.environments:
            rendered[environment] = validate.kustomize(OVERLAYS / environment)
        others.append(validate.kustomize(ARGOCD))
        others.extend(validate.load_files(ARGOCD, skip=validate.listed(ARGOCD)))
        if WORKFLOWS.is_dir():
            others.extend(validate.load_files(WORKFLOWS))
        count = sum(len(s.docs) for s in [*rendered.values(), *others])
        return [], f"{len(rendered)} overlays and argocd/ rendered, {count} objects"

    failures = _stage("kustomize", render)
    if failures:
        return 1
    sources = [*rendered.values(), *others]

    def core() -> tuple[list[str], str]:
        checked = sum(1 for s in sources for d in s.docs if validate.is_core(d))
        return validate.validate_core(sources), f"{checked} core objects, kubernetes-validate --strict"

    def checkov() -> tuple[list[str], str]:
        found, counts = policy.scan(root)
        return found, ", ".join(f"{n} {k}" for k, n in counts.items())

    def app() -> tuple[list[str], str]:
        found = [f for env, src in rendered.items() for f in contract.app(src, settings, env, root)]
        argo = [d for s in others for d in s.docs]
        found += contract.argocd(argo, rendered, settings)
        found += contract.dockerfile(root / policy.DOCKERFILE, settings)
        return found, "ports, probes, env, series, SLOs, digests, Dockerfile, Argo CD apps and notifications"

    failures += _stage("kubernetes-validate", core)
    failures += _crd_stage(root, sources)
    failures += _stage("app contract", app)
    failures += _stage("checkov", checkov)
    verdict = f"FAILED with {len(failures)} problems" if failures else "passed"
    print(f"manifests check: {verdict} in {time.perf_counter() - start:.1f} s")
    return 1 if failures else 0
