"""The image reference contract: `<registry>/<owner>/conveyor:<model-version>-<git-sha7>@sha256:<digest>`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from conveyor.errors import ConveyorError

IMAGE_NAME = "conveyor"
_REF = re.compile(
    r"^(?P<repository>[a-z0-9][a-z0-9.-]*(?::[0-9]+)?/[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)*"
    rf"/{IMAGE_NAME})"
    r":(?P<version>[0-9]+)-(?P<commit>[0-9a-f]{7})"
    r"@(?P<digest>sha256:[0-9a-f]{64})$"
)
EXAMPLE = f"ghcr.io/conveyor-org/{IMAGE_NAME}:7-1a2b3c4@sha256:<64 hex digits>"


@dataclass(frozen=True)
class ImageRef:
    repository: str
    model_version: int
    commit: str
    digest: str

    @property
    def tag(self) -> str:
        return f"{self.model_version}-{self.commit}"

    @property
    def tagged(self) -> str:
        """`repository:tag`, the name people read; the digest is what the cluster pulls."""
        return f"{self.repository}:{self.tag}"

    def __str__(self) -> str:
        return f"{self.tagged}@{self.digest}"


def parse_image(ref: str) -> ImageRef:
    """Parse a pinned image reference; raise ConveyorError naming the value and the expected form."""
    match = _REF.match(ref.strip())
    if match is None:
        raise ConveyorError(f"--image = {ref!r} is not a pinned image reference; expected {EXAMPLE}.")
    return ImageRef(
        repository=match["repository"],
        model_version=int(match["version"]),
        commit=match["commit"],
        digest=match["digest"],
    )
