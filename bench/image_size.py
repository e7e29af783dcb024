"""Image sizes: the serving runtime, the pipeline target, and a naive single-stage image with all of requirements.txt.

Usage (after scripts/ci/setup-podman.sh): python bench/image_size.py --models DIR [--cold]

DIR is a model bundle as the gate exports it (models/ after `make run`). The images are built with podman from a
temporary context (the files .dockerignore allows, and DIR as models/) on the local debootstrap base, through
scripts/ci/build_image.py. --cold builds the runtime once with --no-cache before the timed warm rebuild.
Prints a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "scripts" / "ci" / "build_image.py"
TAG = "localhost/conveyor-bench"
# Everything in one stage, as a first Dockerfile usually is: the whole lock, root, no cleanup.
NAIVE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
WORKDIR /app
COPY . /app
RUN --mount=type=secret,id=pip-conf,target=/etc/pip.conf --mount=type=secret,id=pip-ca \\
    python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-deps -r requirements.txt \\
    && /opt/venv/bin/pip install --no-deps .
ENV PATH=/opt/venv/bin:$PATH MODEL_DIR=/app/models CONVEYOR_PARAMS=/app/params.yaml
CMD ["conveyor", "serve", "--host", "0.0.0.0"]
"""


def context(models: Path, dest: Path) -> Path:
    """The repository files the build may see (.dockerignore's allow-list) and `models` as models/."""
    allowed = [line[1:].strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] == "!"]
    shutil.copy(ROOT / ".dockerignore", dest)
    shutil.copy(ROOT / "Dockerfile", dest)
    for name in allowed:
        source = ROOT / name
        if name == "models":
            shutil.copytree(models, dest / name)
        elif source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
        elif source.exists():
            shutil.copy(source, dest / name)
    return dest


def build(folder: Path, tag: str, *options: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, str(BUILD), "--quiet", "--tag", tag, *options, str(folder)], check=True)
    return time.monotonic() - started


def size_mb(tag: str) -> float:
    inspected = json.loads(subprocess.run(["podman", "image", "inspect", tag], capture_output=True, check=True).stdout)
    return inspected[0]["Size"] / 1e6


def smoke(tag: str, *command: str) -> str:
    done = subprocess.run(
        ["podman", "run", "--rm", "--read-only", "--tmpfs", "/tmp", "-e", "HOME=/tmp", "--entrypoint", "sh", tag,
         "-c", " && ".join(command)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return " | ".join(done.stdout.split("\n")[:-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="a model bundle folder (metadata.json, ...)")
    parser.add_argument("--cold", action="store_true", help="also time a runtime build with no layer cache")
    args = parser.parse_args()
    if not (args.models / "metadata.json").is_file():
        parser.error(f"--models {args.models}: no metadata.json; expected the gate's export (models/)")

    with tempfile.TemporaryDirectory(prefix="conveyor-image-bench-") as tmp:
        folder = context(args.models, Path(tmp))
        (folder / "Dockerfile.naive").write_text(NAIVE)
        if args.cold:
            cold = build(folder, f"{TAG}:runtime", "--no-cache", "--target", "runtime")
            print(f"runtime, cold (--no-cache): {cold:.0f} s")
        warm = build(folder, f"{TAG}:runtime", "--target", "runtime")
        print(f"runtime, warm (every layer cached): {warm:.1f} s")
        pipeline = build(folder, f"{TAG}:pipeline", "--target", "pipeline")
        naive = build(folder, f"{TAG}:naive", "--file", str(folder / "Dockerfile.naive"))
    print("pipeline:", smoke(f"{TAG}:pipeline", "conveyor --help | head -1", "dvc --version", "git --version"))
    rows = [
        ("runtime (default target)", "requirements-serve.txt, conveyor, models/", f"{TAG}:runtime", warm),
        ("pipeline (`--target pipeline`)", "requirements.txt, conveyor, git", f"{TAG}:pipeline", pipeline),
        ("naive single stage", "requirements.txt, conveyor, models/, sources", f"{TAG}:naive", naive),
    ]
    print("\n| image | holds | size | build time in this run |\n|---|---|---|---|")
    for name, holds, tag, seconds in rows:
        print(f"| {name} | {holds} | {size_mb(tag):,.0f} MB | {seconds:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
