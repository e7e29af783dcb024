"""The release an environment runs: k8s/overlays/<env>/release/kustomization.yaml, a kustomize Component.

`conveyor deploy` is its only writer. It pins the image by digest and annotates the Rollout with the model
version (read by the canary analysis), the gate report and Argo CD links to both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conveyor.deploy.image import IMAGE_NAME, ImageRef, parse_image
from conveyor.errors import ConveyorError

OVERLAYS = Path("k8s/overlays")
RELEASE_FILE = Path("release/kustomization.yaml")
ROLLOUT = "conveyor"
MODEL_VERSION = "conveyor.dev/model-version"
IMAGE = "conveyor.dev/image"
GATE_REPORT = "conveyor.dev/gate-report"
LINK = "link.argocd.argoproj.io/"
HEADER = (
    "# The release this environment runs. Written by `conveyor deploy` (bump, promote, rollback) only:\n"
    "# change it through them so that every change is one deploy commit.\n"
)


@dataclass(frozen=True)
class Release:
    """What an environment runs: the image pinned by digest (its tag names the model version) and the gate
    report that let it through."""

    image: ImageRef
    gate_report: str

    @property
    def model_version(self) -> int:
        return self.image.model_version


def release_path(environment: str, overlays: Path = OVERLAYS) -> Path:
    return overlays / environment / RELEASE_FILE


class _Literal(yaml.SafeDumper):
    """Multi-line strings (the patch) as `|-` blocks, so the file reads like the YAML it embeds."""


_Literal.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None),
)


def render(release: Release, *, mlflow_ui: str, model_name: str) -> str:
    """The Component's text: stable key order, so equal releases give equal files."""
    annotations = {
        MODEL_VERSION: str(release.model_version),
        IMAGE: str(release.image),
        GATE_REPORT: release.gate_report,
        f"{LINK}mlflow-model-version": (
            f"{mlflow_ui.rstrip('/')}/#/models/{model_name}/versions/{release.model_version}"
        ),
    }
    if release.gate_report.startswith(("https://", "http://")):
        annotations[f"{LINK}gate-report"] = release.gate_report
    patch = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": ROLLOUT, "annotations": annotations},
    }
    component = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "images": [
            {
                "name": IMAGE_NAME,
                "newName": release.image.repository,
                "newTag": release.image.tag,
                "digest": release.image.digest,
            }
        ],
        "patches": [{"patch": yaml.safe_dump(patch, sort_keys=False).rstrip("\n")}],
    }
    return HEADER + yaml.dump(component, Dumper=_Literal, sort_keys=False, width=200)


def parse(text: str, source: Path | str) -> Release:
    """Read a release file back; raise ConveyorError if it is not one `conveyor deploy` wrote."""
    try:
        component: dict[str, Any] = yaml.safe_load(text)
        image = component["images"][0]
        patch = yaml.safe_load(component["patches"][0]["patch"])
        annotations = patch["metadata"]["annotations"]
        ref = f"{image['newName']}:{image['newTag']}@{image['digest']}"
        return Release(image=parse_image(ref), gate_report=str(annotations[GATE_REPORT]))
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ConveyorError) as exc:
        raise ConveyorError(
            f"{source} is not a release file written by `conveyor deploy` ({type(exc).__name__}: {exc})."
        ) from None


def read(path: Path) -> Release:
    try:
        return parse(path.read_text(), path)
    except FileNotFoundError:
        raise ConveyorError(f"{path} does not exist; every environment needs its release file.") from None
