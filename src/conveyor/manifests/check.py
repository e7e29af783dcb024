"""`conveyor manifests check`: render k8s/ and argocd/, validate every object, run checkov, and cross-check
the manifests against the serving app and params.yaml. Exits 1 on any failure; prints what it checked.
The KServe variant (k8s/kserve/overlays/<env>, docs/kserve.md) goes through every stage beside the overlays."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from conveyor.config import Settings
from conveyor.deploy.release import OVERLAYS
from conveyor.errors import ConveyorError
from conveyor.manifests import contract, policy, rules, validate

ARGOCD = Path("argocd")
WORKFLOWS = policy.WORKFLOWS
COMPONENTS = Path("k8s/components")  # opt-in kustomize Components a fork enables in its overlays
KSERVE = contract.KSERVE_OVERLAYS  # the KServe variant: an InferenceService per environment


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
        print(f"  - {failure}")
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
        groups = sorted({validate.group_of(d) for s in sources for d in s.docs if not validate.is_core(d)})
        return found, f"{checked} objects of {', '.join(groups)} against {origin}"

    return _stage("CRD schemas", run)


def render_all(root: Path, environments: list[str]) -> tuple[dict[str, validate.Source], list[validate.Source]]:
    """(each environment's rendered overlay, everything else: argocd/ and k8s/argo-workflows)."""
    rendered = {env: validate.kustomize(root / OVERLAYS / env) for env in environments}
    others = validate.collect(root / ARGOCD)
    if (root / WORKFLOWS).is_dir():
        others += validate.collect(root / WORKFLOWS)
    return rendered, others


def render_components(root: Path, environment: str) -> dict[str, validate.Source]:
    """Each opt-in Component of k8s/components rendered on top of the environment's overlay, as a fork enables it,
    so that one no overlay enables yet is checked too. Keyed by the component's folder."""
    rendered = {}
    folders = sorted(p.parent for p in (root / COMPONENTS).glob("*/kustomization.yaml"))
    for folder in folders:
        with tempfile.TemporaryDirectory() as scratch:  # kustomize takes no absolute paths: relative ones from here
            overlay = os.path.relpath(root / OVERLAYS / environment, scratch)
            component = os.path.relpath(folder, scratch)
            (Path(scratch) / "kustomization.yaml").write_text(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                f"resources: [{overlay}]\ncomponents: [{component}]\n"
            )
            source = validate.kustomize(Path(scratch))
        name = f"{folder.relative_to(root).as_posix()} on {OVERLAYS / environment}"
        rendered[folder.relative_to(root).as_posix()] = validate.Source(name, source.docs)
    return rendered


def render_kserve(root: Path, environments: list[str]) -> dict[str, validate.Source]:
    """The KServe variant of each environment (k8s/kserve/overlays/<env>), where the repository has one."""
    if not (root / KSERVE).is_dir():
        return {}
    return {env: validate.kustomize(root / KSERVE / env) for env in environments}


def synced_trees(
    rendered: dict[str, validate.Source],
    others: list[validate.Source],
    kserve: dict[str, validate.Source] | None = None,
) -> dict[str, list[validate.Doc]]:
    """What each path an Application may sync renders, keyed as the Application names it (source.path)."""
    trees = {str(OVERLAYS / env): source.docs for env, source in rendered.items()}
    trees |= {str(KSERVE / env): source.docs for env, source in (kserve or {}).items()}
    trees[str(WORKFLOWS)] = [d for s in others if Path(s.name).is_relative_to(WORKFLOWS) for d in s.docs]
    return trees


def run(settings: Settings) -> int:
    """Every stage in turn; 1 when any found a problem."""
    root = Path.cwd()
    start = time.perf_counter()
    rendered: dict[str, validate.Source] = {}
    others: list[validate.Source] = []
    components: dict[str, validate.Source] = {}
    kserve: dict[str, validate.Source] = {}
    first = settings.deploy.environments[0]

    def render() -> tuple[list[str], str]:
        found = render_all(root, settings.deploy.environments)
        rendered.update(found[0])
        others.extend(found[1])
        components.update(render_components(root, first))
        kserve.update(render_kserve(root, settings.deploy.environments))
        count = sum(len(s.docs) for s in [*rendered.values(), *others, *kserve.values()])
        extra = f", {len(components)} component{'s' * (len(components) != 1)} on {first}" if components else ""
        extra += f", {len(kserve)} KServe overlays" if kserve else ""
        return [], f"{len(rendered)} overlays, argocd/ and k8s/argo-workflows rendered: {count} objects{extra}"

    def alert_rules() -> tuple[list[str], str]:
        found = rules.check(root, settings)
        found += [f for env, src in rendered.items() for f in rules.in_overlay(src.docs, settings, env, src.name)]
        return found, f"{len(rules.expected(root, settings))} rule files against params.yaml, each overlay's own"

    failures = _stage("kustomize", render)
    if failures:
        print("manifests check: FAILED: nothing renders, so nothing else was checked")
        return 1
    sources = [*rendered.values(), *others, *components.values(), *kserve.values()]

    def core() -> tuple[list[str], str]:
        checked = sum(1 for s in sources for d in s.docs if validate.is_core(d))
        return validate.validate_core(sources), f"{checked} core objects, kubernetes-validate --strict"

    def app() -> tuple[list[str], str]:
        found = [f for env, src in rendered.items() for f in contract.app(src, settings, env, root)]
        found += [f for src in components.values() for f in contract.app(src, settings, first, root)]
        found += [f for env, src in kserve.items() for f in contract.kserve(src, settings, env, root)]
        found += contract.argocd([d for s in others for d in s.docs], synced_trees(rendered, others, kserve), settings)
        found += contract.dockerfile(root / policy.DOCKERFILE, settings)
        found += contract.model_name(root, settings)
        return found, "ports, probes, env, series, SLOs, digests, Dockerfile, KServe, Argo CD apps and notifications"

    def checkov() -> tuple[list[str], str]:
        found, counts = policy.scan(root, policy.predictor_pods(kserve.values()))
        return found, ", ".join(f"{n} {k}" for k, n in counts.items())

    failures += _stage("alert rules", alert_rules)
    failures += _stage("kubernetes-validate", core)
    failures += _crd_stage(root, sources)
    failures += _stage("app contract", app)
    failures += _stage("checkov", checkov)
    verdict = f"FAILED with {len(failures)} problems" if failures else "passed"
    print(f"manifests check: {verdict} in {time.perf_counter() - start:.1f} s")
    return 1 if failures else 0
