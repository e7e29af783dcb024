"""checkov on k8s/, argocd/ and the Dockerfile: zero failures, and a written reason for every skipped check.

checkov runs from its own virtualenv (.venv-checkov: it pins packaging<24, which the test tools outgrew).
The kustomize framework scans what Argo CD applies, the rendered base, overlays and argocd/, where the
Rollout's pod template (a Deployment through workloadRef) and the smoke Job get the full pod checks; the
kubernetes and argo_workflows frameworks scan the plain files of k8s/argo-workflows.
A check is skipped by an inline annotation with a reason (`checkov.io/skipN: CKV_ID=reason`) or in
.checkov.yaml with a comment naming it and saying why; a skip without a reason fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conveyor.errors import ConveyorError
from conveyor.manifests.validate import kubectl

CHECKOV_ENV = "CONVEYOR_CHECKOV"
TARGETS = ("k8s", "argocd")
WORKFLOWS = Path("k8s/argo-workflows")
DOCKERFILE = "Dockerfile"
CONFIG = ".checkov.yaml"
NO_REASON = {"", "no comment provided"}


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


def scan(root: Path) -> tuple[list[str], dict[str, int]]:
    """(failure sentences, counts of passed/failed/skipped checks) for k8s/, argocd/ and the Dockerfile.

    Two runs in parallel: the kustomizations (--directory), then the files no kustomization renders
    (--file: the Dockerfile and k8s/argo-workflows), since checkov ignores --file beside --directory.
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
    return failures + judge(reports), count(reports)


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
