"""checkov on k8s/, argocd/ and the Dockerfile: zero failures, and a written reason for every skipped check.

checkov runs from its own virtualenv (.venv-checkov: it pins packaging<24, which the test tools outgrew).
The kustomize framework scans what Argo CD applies, the rendered base, overlays and argocd/, where the
Rollout's pod template (a Deployment through workloadRef) and the smoke Job get the full pod checks; the
kubernetes and argo_workflows frameworks scan the plain files of k8s/argo-workflows.
checkov knows no KServe InferenceService: the KServe variant's predictors (k8s/kserve) are projected into the
Pods KServe makes of them (spec.predictor is a PodSpec plus KServe's own fields) and scanned with the kubernetes
framework in a third run, so they get the same pod checks as the Rollout's template.
A check is skipped by an inline annotation with a reason (`checkov.io/skipN: CKV_ID=reason`) or in
.checkov.yaml with a comment naming it and saying why; a skip without a reason fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conveyor.errors import ConveyorError
from conveyor.manifests.validate import Doc, Source, kubectl

CHECKOV_ENV = "CONVEYOR_CHECKOV"
TARGETS = ("k8s", "argocd")
WORKFLOWS = Path("k8s/argo-workflows")
DOCKERFILE = "Dockerfile"
CONFIG = ".checkov.yaml"
NO_REASON = {"", "no comment provided"}
# spec.predictor's fields that are KServe's, not the PodSpec's (ComponentExtensionSpec, the model frameworks):
# the properties of the InferenceService schema's predictor that Kubernetes' PodSpec does not have.
KSERVE_ONLY = frozenset({
    "annotations", "autoScaling", "batcher", "canaryTrafficPercent", "containerConcurrency", "deploymentStrategy",
    "huggingface", "labels", "lightgbm", "logger", "maxReplicas", "minReplicas", "model", "onnx", "paddle", "pmml",
    "pytorch", "scaleMetric", "scaleMetricType", "scaleTarget", "sklearn", "storageUris", "tensorflow", "timeout",
    "triton", "workerSpec", "xgboost",
})  # fmt: skip
# The labels KServe gives the predictor's pods (kserve/kserve pkg/controller/v1beta1/inferenceservice/components/
# predictor.go, buildObjectMeta): serving.kserve.io/inferenceservice = the InferenceService's name, component.
KSERVE_POD_LABEL = "serving.kserve.io/inferenceservice"
KSERVE_POD_LABELS = {"component": "predictor"}


@dataclass(frozen=True)
class Finding:
    check: str
    name: str
    resource: str
    file: str

    def sentence(self) -> str:
        return f"{self.check} {self.name!r} failed for {self.resource} ({self.file})"


def checkov(root: Path) -> str:
    named = os.environ.get(CHECKOV_ENV)
    candidates = [named] if named else [str(root / ".venv-checkov/bin/checkov"), shutil.which("checkov")]
    for candidate in filter(None, candidates):
        if Path(candidate).is_file():
            return candidate
    raise ConveyorError("checkov was not found in .venv-checkov; run `make manifests-check` to create it.")


def _documents(text: str) -> list[dict[str, Any]]:
    """checkov prints one JSON report, a list of them, or several after another (one per -d)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := _skip_space(text, at)) < len(text):
        value, at = decoder.raw_decode(text, at)
        found.extend(value if isinstance(value, list) else [value])
    return found


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def predictor_pods(sources: Iterable[Source]) -> dict[str, list[Doc]]:
    """Each InferenceService's predictor as the Pod KServe makes of it: the PodSpec fields of spec.predictor, the
    InferenceService's labels and annotations (where `checkov.io/skipN` goes) with those KServe adds, beside the
    NetworkPolicies rendered with it (checkov's graph checks pair them). Keyed by a file name naming the source."""
    files = {}
    for source in sources:
        for doc in (d for d in source.docs if d.get("kind") == "InferenceService"):
            meta = doc.get("metadata") or {}
            predictor = (doc.get("spec") or {}).get("predictor") or {}
            labels = {**(meta.get("labels") or {}), **(predictor.get("labels") or {}), **KSERVE_POD_LABELS}
            labels[KSERVE_POD_LABEL] = meta.get("name")
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": meta.get("name"),
                    "namespace": meta.get("namespace"),
                    "labels": labels,
                    "annotations": {**(meta.get("annotations") or {}), **(predictor.get("annotations") or {})},
                },
                "spec": {k: v for k, v in predictor.items() if k not in KSERVE_ONLY},
            }
            policies = [d for d in source.docs if d.get("kind") == "NetworkPolicy"]
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{source.name}-{meta.get('name')}")
            files[f"{stem}.predictor.yaml"] = [pod, *policies]
    return files


def scan(root: Path, pods: dict[str, list[Doc]] | None = None) -> tuple[list[str], dict[str, int]]:
    """(failure sentences, counts of passed/failed/skipped checks) for k8s/, argocd/, the Dockerfile and the
    KServe predictors' `pods` (predictor_pods).

    Runs in parallel: the kustomizations (--directory), the files no kustomization renders (--file: the
    Dockerfile and k8s/argo-workflows), since checkov ignores --file beside --directory, and the pods.
    """
    failures = unexplained_skips(root)
    config = ["--config-file", CONFIG] if (root / CONFIG).is_file() else []
    manifests = [*config, "--framework", "kustomize"]
    for target in TARGETS:
        manifests += ["--directory", target]
    runs = [manifests]
    files = [DOCKERFILE] if (root / DOCKERFILE).is_file() else []
    if not files:
        failures.append(f"{DOCKERFILE} does not exist, so checkov cannot scan the serving image's definition.")
    files += [str(p.relative_to(root)) for p in sorted((root / WORKFLOWS).rglob("*.y*ml"))]
    if files:
        frameworks = ["dockerfile", "kubernetes", "argo_workflows"]
        runs.append([*config, "--framework", *frameworks, *(a for f in files for a in ("--file", f))])
    with tempfile.TemporaryDirectory(prefix="predictors-") as scratch:
        for name, docs in (pods or {}).items():
            (Path(scratch) / name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
        if pods:
            runs.append([*config, "--framework", "kubernetes", "--directory", scratch])
        return failures + judge(reports := _run(root, runs)), count(reports)


def _run(root: Path, runs: list[list[str]]) -> list[dict[str, Any]]:
    """Each checkov run in parallel; their JSON reports."""
    # The kustomize framework renders with whichever kubectl is first on PATH: make it ours.
    env = os.environ | {"PATH": f"{Path(kubectl()).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    binary = checkov(root)
    started = [
        subprocess.Popen(
            [binary, "--skip-download", "--output", "json", *args],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for args in runs
    ]  # fmt: skip
    reports = []
    for process in started:
        out, err = process.communicate(timeout=600)
        try:
            found = _documents(out)
        except json.JSONDecodeError:
            found = []
        if not found:
            said = (err.strip() or out.strip()).splitlines()
            raise ConveyorError(
                f"checkov printed no JSON report (exit {process.returncode}): {said[-1] if said else 'no output'}."
            )
        reports += found
    return reports


def unexplained_skips(root: Path) -> list[str]:
    """Checks .checkov.yaml skips with no comment line that names them and gives a reason."""
    path = root / CONFIG
    if not path.is_file():
        return []
    text = path.read_text()
    skipped = (yaml.safe_load(text) or {}).get("skip-check") or []
    return [
        f"{CONFIG} skips {check} without a comment line `# {check} ...` giving the reason."
        for check in skipped
        if not re.search(rf"^\s*#\s*{re.escape(str(check))}\b.*\w.*\w", text, re.MULTILINE)
    ]


def judge(reports: list[dict[str, Any]]) -> list[str]:
    """Failures, skips without a reason and parsing errors, each once (checkov repeats reports per -d)."""
    seen: set[str] = set()
    for report in reports:
        results = report.get("results", {})
        for item in results.get("failed_checks", []):
            seen.add(_finding(item).sentence() + ".")
        for item in results.get("skipped_checks", []):
            reason = str((item.get("check_result") or {}).get("suppress_comment", "")).strip()
            if reason.lower() in NO_REASON:
                seen.add(f"{_finding(item).sentence()}: skipped without a written reason.")
        for path in results.get("parsing_errors", []):
            seen.add(f"checkov could not parse {path}.")
    return sorted(seen)


def count(reports: list[dict[str, Any]]) -> dict[str, int]:
    """Distinct passed, failed and skipped (check, resource) pairs over all reports."""
    kinds = {"passed": "passed_checks", "failed": "failed_checks", "skipped": "skipped_checks"}
    return {
        kind: len({(i.get("check_id"), i.get("resource")) for r in reports for i in r.get("results", {}).get(key, [])})
        for kind, key in kinds.items()
    }


def _finding(item: dict[str, Any]) -> Finding:
    return Finding(
        check=str(item.get("check_id")),
        name=str(item.get("check_name")),
        resource=str(item.get("resource")),
        file=str(item.get("file_path")),
    )
