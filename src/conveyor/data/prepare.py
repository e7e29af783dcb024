"""`conveyor data prepare`: data/ ready for `dvc repro`, as params.yaml `data.source` says.

demo: the demo fetch (which refuses to overwrite a file that is not the demo's), cached by DVC, and it must be the
version data.dvc records. dvc: the data is the user's own; nothing is written into data/, it is only checked to be
there and to be the version data.dvc records, so a model never claims a data version it was not trained on."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conveyor.config import Settings
from conveyor.data import fetch
from conveyor.errors import ConveyorError
from conveyor.provenance import DATA_DVC, data_version


def _dvc(*args: str) -> str:
    done = subprocess.run(["dvc", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise ConveyorError(f"`dvc {' '.join(args)}` exited {done.returncode}: {said[0]}")
    return done.stdout


def prepare(settings: Settings, dvc_file: Path = DATA_DVC) -> str:
    """Get or check the data; a line saying what was done."""
    folder = settings.data.path.parent
    if not dvc_file.exists():
        raise ConveyorError(
            f"{dvc_file} does not exist; data.source = {settings.data.source!r} needs the data versioned with "
            f"`dvc add {folder}`."
        )
    if settings.data.source == "demo":
        return _demo(settings, dvc_file)
    return _own(settings, dvc_file)


def _demo(settings: Settings, dvc_file: Path) -> str:
    written = fetch.fetch(settings)
    recorded = dvc_file.read_text()
    _dvc("commit", "--force", "--quiet", str(dvc_file))
    cached = data_version(dvc_file)
    if dvc_file.read_text() != recorded:
        dvc_file.write_text(recorded)
        raise ConveyorError(
            f"{settings.data.path.parent}/ holds more than the demo data (md5 {cached}, {dvc_file} records "
            f"{data_version(dvc_file)}), such as ingested batches; remove them, or set data.source: dvc and "
            f"`dvc add {settings.data.path.parent}` to version them."
        )
    return f"wrote the demo data ({', '.join(map(str, written))}), version {cached}"


def _own(settings: Settings, dvc_file: Path) -> str:
    folder = settings.data.path.parent
    if not settings.data.path.exists():
        raise ConveyorError(
            f"{settings.data.path} does not exist; with data.source: dvc nothing writes into {folder}/: "
            f"get the version {dvc_file} records with `dvc pull {dvc_file}`."
        )
    status = json.loads(_dvc("status", "--json", str(dvc_file)) or "{}")
    states = sorted({s for change in status.get(str(dvc_file), []) for s in change.get("changed outs", {}).values()})
    if states == ["modified"]:
        raise ConveyorError(
            f"{folder}/ differs from the version {dvc_file} records; version it with `dvc add {folder}` "
            f"(or restore it with `dvc checkout {dvc_file}`)."
        )
    if states:
        raise ConveyorError(
            f"{folder}/ cannot be checked against {dvc_file} ({', '.join(states)}); get that version with "
            f"`dvc pull {dvc_file}`, or version what is there with `dvc add {folder}`."
        )
    return f"{folder}/ is the version {dvc_file} records ({data_version(dvc_file)}); nothing written"
