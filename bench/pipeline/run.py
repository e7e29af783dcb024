"""Pipeline wall time on this machine: each dvc.yaml stage, a full `dvc repro`, and a no-op `dvc repro`.

Usage: python bench/pipeline/run.py [--repeats N]
Works in a temporary project (git + DVC) built from this repo's params.yaml, dvc.yaml and fetched data/."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _project(parent: Path) -> Path:
    root = Path(tempfile.mkdtemp(dir=parent))
    for item in ("params.yaml", "dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / item, root / item)
    shutil.copytree(ROOT / "data", root / "data")
    shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "add", "-q", "data"]):
        subprocess.run(cmd, cwd=root, check=True)
    return root


def _timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3, help="no-op repro repetitions")
    args = parser.parse_args()
    env = os.environ | {"PATH": f"{BIN}:{os.environ['PATH']}"}
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    with tempfile.TemporaryDirectory() as tmp:
        steps_root = _project(Path(tmp))
        print(f"load: {os.getloadavg()[0]:.2f}")
        print("| stage | seconds |\n|---|---|")
        total = 0.0
        for name, stage in stages.items():
            seconds = _timed(
                stage["cmd"].split(), steps_root, env | {"MLFLOW_TRACKING_URI": f"sqlite:///{steps_root}/a.db"}
            )
            total += seconds
            print(f"| {name} | {seconds:.1f} |")
        print(f"| sum of stages | {total:.1f} |")
        shutil.rmtree(steps_root)
        repro_root = _project(Path(tmp))
        full = _timed(["dvc", "repro"], repro_root, env)
        noop = statistics.median(_timed(["dvc", "repro"], repro_root, env) for _ in range(args.repeats))
        print(f"\nfull `dvc repro`: {full:.1f} s; no-op `dvc repro` (median of {args.repeats}): {noop:.2f} s")


if __name__ == "__main__":
    main()
