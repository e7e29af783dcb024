"""Does the latency gate judge the model and not the machine? Run it many times, at rest and beside CPU hogs.

Run from the repository root after `conveyor data fetch`:
    OMP_NUM_THREADS=1 python bench/latency_gate.py [--runs 10] [--hogs 2]

Two models, each trained once in a temporary project (params.yaml and the data copied there, the model saved
as `conveyor train` saves it, without the MLflow run or the mitigation, which the latency check does not read):
the default HistGradientBoosting model (served by the exact fast path) and a genuinely slow one, a 500-tree
RandomForestClassifier (served by the scikit-learn fallback). `conveyor latency` then runs `--runs` times per
model in a fresh interpreter, first at rest, then with `--hogs` processes spinning `while True: pass` beside it.
Prints pass counts and the median, min and max of the gated CPU figures and of the wall-clock ones; --json
writes every run's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import skops.io
import yaml

from conveyor import bundle
from conveyor.config import load_settings
from conveyor.data import frames
from conveyor.decision import Decision
from conveyor.paths import TRAINED_MODEL
from conveyor.training import model

ROOT = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, "-m", "conveyor.cli", "latency"]
MODELS = {
    "default (HistGradientBoosting)": {},
    "RandomForest, 500 trees": {
        "estimator": "sklearn.ensemble.RandomForestClassifier",
        "params": {"n_estimators": 500, "random_state": 42},
        "extra_trusted": ["sklearn.tree._tree.Tree", "numpy.dtype"],  # the trees; the one-hot encoder's dtype
    },
}
GATED = ("single_cpu_p99_ms", "batch_cpu_rows_per_s", "ready_cpu_seconds")
WALL = ("single_p50_ms", "single_p99_ms", "batch_rows_per_s", "ready_seconds")


def project(folder: Path, change: dict) -> Path:
    """A project in `folder` with the model `change` describes trained on its training split."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    if change:
        raw["model"] |= {"estimator": change["estimator"], "params": change["params"]}
        raw["model"]["trusted_types"] += change["extra_trusted"]
    folder.mkdir(parents=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    shutil.copytree(ROOT / "data", folder / "data", ignore=shutil.ignore_patterns("batches"))
    settings = load_settings(folder / "params.yaml")
    with contextlib.chdir(folder):
        train, _ = frames.split(frames.load_training(settings), settings)
        started = time.perf_counter()
        pipeline = model.build_pipeline(settings).fit(*frames.features_and_target(train, settings))
        print(f"  trained in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        TRAINED_MODEL.mkdir(parents=True)
        skops.io.dump(pipeline, TRAINED_MODEL / bundle.MODEL_FILE)
        Decision(threshold=settings.model.decision_threshold).save(TRAINED_MODEL)
    return folder


@contextlib.contextmanager
def hogs(count: int) -> Iterator[None]:
    """`count` CPU-bound processes spinning beside the measurement; ended (by their ids) on the way out."""
    spinning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(1)
        yield
    finally:
        for process in spinning:
            process.kill()
            process.wait()


def runs(folder: Path, count: int) -> list[dict]:
    """`conveyor latency` `count` times in `folder`: pass or fail, the gated figures and the wall-clock ones."""
    found = []
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    for _ in range(count):
        done = subprocess.run(COMMAND, cwd=folder, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"`conveyor latency` exited {done.returncode}: {done.stderr.strip()}")
        report = json.loads((folder / "reports" / "latency.json").read_text())
        metrics = report["metrics"]
        found.append(
            {
                "passed": report["passed"],
                "predictor": metrics["predictor"],
                "failures": report["failures"],
                "load_average": os.getloadavg()[0],
                **{k: metrics[k] for k in GATED},
                **{k: metrics["wall"][k] for k in WALL},
            }
        )
    return found


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} ({min(values):.3g} to {max(values):.3g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--hogs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for index, (name, change) in enumerate(MODELS.items()):
            print(f"{name}:", file=sys.stderr)
            folders[name] = project(Path(tmp) / f"model-{index}", change)
        for name, folder in folders.items():
            for scenario, hogging in (("at rest", 0), (f"beside {args.hogs} CPU hogs", args.hogs)):
                with hogs(hogging):
                    results[f"{name}, {scenario}"] = runs(folder, args.runs)
    print("| model, scenario | passed | single p99 CPU ms | batch CPU rows/s | ready CPU s | "
          "single p50 / p99 wall ms | batch wall rows/s | ready wall s | load average |")  # fmt: skip
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for label, found in results.items():
        column = {k: [r[k] for r in found] for k in (*GATED, *WALL, "load_average")}
        passed = sum(r["passed"] for r in found)
        cells = [
            label,
            f"{passed}/{len(found)}",
            *(spread(column[k]) for k in GATED),
            f"{spread(column['single_p50_ms'])} / {spread(column['single_p99_ms'])}",
            *(spread(column[k]) for k in ("batch_rows_per_s", "ready_seconds", "load_average")),
        ]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
