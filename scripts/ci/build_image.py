"""`podman build` with this host's pip settings, passed in for the build only.

Usage: build_image.py [podman build options ...] CONTEXT

The options pip uses here (`pip config list`: config files and PIP_* variables) are written to a temporary
pip.conf handed to the Dockerfile as the build secret `pip-conf`, the CA bundle as the secret `pip-ca`, and
local index or wheel folders are mounted read-only at neutral paths. No host path or index host name reaches
an image layer or a committed file. Adds `--format docker` (OCI images drop HEALTHCHECK) and the local base
image (scripts/ci/setup-podman.sh) unless the caller passes BASE_IMAGE.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

DEFAULT_BASE = "localhost/debian-bookworm:base"
# pip options that decide where packages come from and how they are fetched.
PASSED = {"index-url", "extra-index-url", "find-links", "trusted-host", "default-timeout", "timeout", "retries"}
LISTS = {"extra-index-url", "find-links", "trusted-host"}
# Later sources win, as in pip: config files, then the install section, then the environment.
PRECEDENCE = {"global": 0, "install": 1, ":env:": 2}
CA_TARGET = "/run/secrets/pip-ca"
LOCAL_ROOT = "/run/pip-local"


def host_pip_settings() -> dict[str, str]:
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    found: list[tuple[int, str, str]] = []
    for line in listing.splitlines():
        key, _, raw = line.partition("=")
        section, _, name = key.partition(".")
        if section in PRECEDENCE and (name in PASSED or name == "cert"):
            found.append((PRECEDENCE[section], name, ast.literal_eval(raw)))
    return {name: value for _, name, value in sorted(found)}


def _local_path(location: str) -> Path | None:
    if location.startswith("file://"):
        return Path(unquote(urlparse(location).path))
    return Path(location) if location.startswith("/") else None


def podman_options(settings: dict[str, str], workdir: Path) -> list[str]:
    """Secrets and read-only volumes that give the build this host's pip settings."""
    options: list[str] = []
    lines = ["[global]"]
    mounts = 0
    for name, value in settings.items():
        if name == "cert":
            if Path(value).is_file():
                options += ["--secret", f"id=pip-ca,src={value}"]
                lines.append(f"cert = {CA_TARGET}")
            continue
        items = value.split() if name in LISTS else [value]
        for index, item in enumerate(items):
            path = _local_path(item)
            if path is None or not path.exists():
                continue
            # A local PEP 503 index (.../simple) links its files relative to its parent: mount that.
            root = path.parent if path.name == "simple" else path
            target = f"{LOCAL_ROOT}/{mounts}"
            mounts += 1
            options += ["--volume", f"{root}:{target}:ro"]
            inside = f"{target}/simple" if root != path else target
            items[index] = f"file://{inside}" if item.startswith("file://") else inside
        lines.append(f"{name} = {' '.join(items)}")
    conf = workdir / "pip.conf"
    conf.write_text("\n".join(lines) + "\n")
    return [*options, "--secret", f"id=pip-conf,src={conf}"]


def main(argv: list[str]) -> int:
    base = [] if any("BASE_IMAGE=" in arg for arg in argv) else ["--build-arg", f"BASE_IMAGE={DEFAULT_BASE}"]
    with tempfile.TemporaryDirectory(prefix="conveyor-build-") as workdir:
        extra = podman_options(host_pip_settings(), Path(workdir))
        command = ["podman", "build", "--format", "docker", *base, *extra, *argv]
        return subprocess.run(command, env=os.environ, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
