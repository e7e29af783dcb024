"""What a job hands on: outputs in $GITHUB_OUTPUT, Markdown in $GITHUB_STEP_SUMMARY, the image it will build."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from conveyor.deploy.image import IMAGE_NAME
from conveyor.errors import ConveyorError
from conveyor.paths import EXPORTED_METADATA, REPORTS, TRAIN_INFO

OUTPUT_ENV = "GITHUB_OUTPUT"
SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def gate_report(reports: Path = REPORTS) -> tuple[dict[str, Any], str]:
    """(gate.json, gate.md) when the gate judged this run; otherwise a failed verdict naming the stage that
    stopped the run and why, with a table of the checks, so a pipeline stopped early still explains itself."""
    from conveyor.gate import verdict

    return verdict.explain(reports, reports.parent / TRAIN_INFO)


def image_name(registry: str, owner: str, model_version: str, commit: str) -> str:
    """`<registry>/<owner>/conveyor:<model-version>-<git-sha7>`; registries want the owner in lower case."""
    if len(commit) < 7 or not all(c in "0123456789abcdef" for c in commit.lower()):
        raise ConveyorError(f"--sha = {commit!r} is not a git commit; expected at least 7 hex digits.")
    return f"{registry.rstrip('/')}/{owner.lower()}/{IMAGE_NAME}:{model_version}-{commit[:7].lower()}"


def trained_commit(metadata_path: Path = EXPORTED_METADATA) -> str:
    """The commit models/metadata.json says the model was trained from, without the '-dirty' mark that files
    the pipeline itself rewrites (data.dvc after an ingest) leave on it."""
    commit = str(json.loads(metadata_path.read_text())["git_commit"])
    return commit.removesuffix("-dirty")


def gate_outputs(
    reports: Path, metadata: Path, commit: str | None, registry: str | None, owner: str | None
) -> dict[str, str]:
    """The job outputs: passed, model-version, run-id and, for a passed gate with a registry, the image name."""
    verdict, _ = gate_report(reports)
    passed = bool(verdict.get("passed"))
    outputs = {
        "passed": "true" if passed else "false",
        "model-version": str(verdict.get("model_version") or ""),
        "run-id": str(verdict.get("run_id") or ""),
    }
    if verdict.get("stopped_at"):
        outputs["stopped-at"] = str(verdict["stopped_at"])
    if passed and registry:
        if not owner or not commit:
            missing = "--owner" if not owner else "--sha (or $GITHUB_SHA)"
            raise ConveyorError(f"{missing} is empty; the image name needs the owner and the commit with --registry.")
        trained = trained_commit(metadata)
        if not trained.startswith(commit[:7]):
            raise ConveyorError(
                f"models/metadata.json git_commit = {trained!r} is not the commit being built ({commit}); "
                "expected the model of this checkout."
            )
        outputs["image"] = image_name(registry, owner, outputs["model-version"], commit)
    return outputs


def write_outputs(outputs: dict[str, str]) -> None:
    """Append `key=value` lines to $GITHUB_OUTPUT, or print them when run outside Actions."""
    for key, value in outputs.items():
        if "\n" in value:
            raise ConveyorError(f"output {key} = {value!r} spans lines; expected one line.")
    lines = "".join(f"{key}={value}\n" for key, value in outputs.items())
    _append(OUTPUT_ENV, lines)


def write_summary(markdown: str) -> None:
    """Append Markdown to $GITHUB_STEP_SUMMARY, or print it when run outside Actions."""
    _append(SUMMARY_ENV, markdown if markdown.endswith("\n") else markdown + "\n")


def _append(variable: str, text: str) -> None:
    target = os.environ.get(variable)
    if not target:
        print(text, end="")
        return
    with Path(target).open("a", encoding="utf-8") as handle:
        handle.write(text)
