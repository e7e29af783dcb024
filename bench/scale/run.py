"""Stage times and peak memory at 1x, 4x and 16x the training rows: the figures behind params.yaml argo.tasks.

Usage: python bench/scale/run.py [--scales 1 4 16] [--seed 0] [--cpus N] [--stages NAME ...]

For each scale, a temporary project (params.yaml, dvc.yaml, src/ and data/ of this repository) whose
data/train.csv holds `scale` times the rows of the real one: the real rows plus rows drawn from them with
replacement, with a fixed seed (1x is the file as it is). Then every dvc.yaml stage runs in order as its
`cmd`, each timed (wall and CPU seconds) with its peak resident memory, both from wait4() of the stage's
process. Resampling repeats rows, so the copy's gates.quality.duplicate_fraction max is 1.0 and every stage
does its full work. With --cpus N every stage runs on N cores (CPU affinity) with OMP_NUM_THREADS=N, as a pod
with a CPU limit of N runs it. Prints a Markdown table and the load average (`uptime`) before and after."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    peak_mib: float
    exit: int


def _project(parent: Path, scale: int, seed: int) -> tuple[Path, int]:
    root = Path(tempfile.mkdtemp(dir=parent, prefix=f"scale-{scale}x-"))
    shutil.copy(ROOT / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["gates"]["quality"]["duplicate_fraction"]["max"] = 1.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copytree(ROOT / "data", root / "data")
    train = root / params["data"]["path"]
    rows = pd.read_csv(train, dtype=str, keep_default_na=False)
    extra = rows.sample(n=len(rows) * (scale - 1), replace=True, random_state=np.random.default_rng(seed))
    pd.concat([rows, extra], ignore_index=True).to_csv(train, index=False, lineterminator="\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root, len(rows) * scale


def _measure(cmd: str, cwd: Path, env: dict[str, str], log: Path, cpus: int | None) -> Run:
    """Wall time, then CPU time and peak RSS of the process from wait4 (its waited-for children included)."""

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cpus])

    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            ["/bin/sh", "-c", cmd], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=pin
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus", type=int, default=None, help="cores per stage (default: all, OpenMP unset)")
    parser.add_argument("--stages", nargs="+", default=None, help="run only these dvc.yaml stages, in file order")
    args = parser.parse_args()
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    stages = {name: stage for name, stage in stages.items() if args.stages is None or name in args.stages}
    print(f"before: {_uptime()}; cores per stage: {args.cpus or os.cpu_count()}", flush=True)
    results: dict[int, dict[str, Run]] = {}
    rows: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            root, rows[scale] = _project(Path(tmp), scale, args.seed)
            env = os.environ | {
                "PATH": f"{BIN}:{os.environ['PATH']}",
                "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlruns.db",
            }
            env.pop("CONVEYOR_PARAMS", None)
            if args.cpus:
                env["OMP_NUM_THREADS"] = str(args.cpus)
            results[scale] = {}
            for name, stage in stages.items():
                run = _measure(stage["cmd"], root, env, Path(tmp) / f"{scale}x-{name}.log", args.cpus)
                results[scale][name] = run
                print(
                    f"{scale}x {name}: {run.wall:.1f} s wall, {run.cpu:.1f} s CPU, {run.peak_mib:.0f} MiB, exit {run.exit}",
                    flush=True,
                )
            gate = root / "reports" / "gate.json"
            failures = json.loads(gate.read_text())["failures"] if gate.exists() else ["no reports/gate.json"]
            print(f"{scale}x gate failures: {failures or 'none'}", flush=True)
            local = {"src", "mlartifacts", "mlruns.db"}  # code, and what a tracking server keeps in the cluster
            used = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not local & set(p.parts))
            print(f"{scale}x files the stages leave on the workspace (src/ and MLflow aside): {used / 2**20:.0f} MiB")
            shutil.rmtree(root)
    print(f"after: {_uptime()}\n")
    head = " | ".join(f"{s}x ({rows[s]:,} rows)" for s in args.scales)
    print(f"| stage | {head} |\n|---|{'---|' * len(args.scales)}")
    for name in stages:
        cells = []
        for scale in args.scales:
            run = results[scale][name]
            mark = "" if run.exit == 0 else f", exit {run.exit}"
            cells.append(f"{run.wall:.1f} s ({run.cpu:.1f} s CPU), {run.peak_mib:.0f} MiB{mark}")
        print(f"| {name} | {' | '.join(cells)} |")
    totals = [sum(r.wall for r in results[s].values()) for s in args.scales]
    print(f"| sum | {' | '.join(f'{t:.1f} s' for t in totals)} |")


if __name__ == "__main__":
    main()
