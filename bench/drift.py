"""Time the drift check on the real data, and show where the time goes.

Run from the repository root after `conveyor data fetch`:  python bench/drift.py [--repeat 3]
Works on a temporary copy of params.yaml and the data: no batch is left in data/.
Prints the median wall time of each stage for the holdout window and for the first ingested batch,
the same check with both windows cut to 2,000 rows (what sampling would save), and the whole command.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import median_seconds  # bench/ is the script's folder, so on sys.path

from conveyor.checks import drift
from conveyor.config import load_settings
from conveyor.data import frames, ingest

COMMAND = [sys.executable, "-m", "conveyor.cli", "drift"]


def command_seconds(repeat: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of `conveyor drift` in a fresh interpreter. CPU time (user + system)
    barely moves when other work shares the machine; wall time does."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(COMMAND, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"`conveyor drift` failed: {done.stderr.strip()}")
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def import_seconds(repeat: int) -> float:
    """A fresh interpreter importing the check (Evidently, plotly, scipy), as `conveyor drift` does."""
    command = [sys.executable, "-c", "import conveyor.checks.drift"]
    return median_seconds(lambda: subprocess.run(command, check=True), repeat)


def stat_tests_seconds(settings, repeat: int) -> float:
    """Only the configured per-column tests, no report: the statistics themselves."""
    from evidently import ColumnType
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest

    reference, current, _ = frames.windows(settings)
    gate = settings.gates.drift

    def once() -> None:
        for name in settings.data.features:
            kind, spec = (
                (ColumnType.Categorical, gate.categorical)
                if name in settings.data.categorical
                else (ColumnType.Numerical, gate.numeric)
            )
            test = get_registered_stattest(spec.test, kind)
            test(reference[name].dropna(), current[name].dropna(), kind, spec.threshold)

    return median_seconds(once, repeat)


def sampled_run_seconds(settings, rows: int, repeat: int) -> float:
    reference, current, window = frames.windows(settings)
    cut = (reference.sample(rows, random_state=0), current.sample(rows, random_state=0), window)
    real = drift.windows
    drift.windows = lambda _settings: cut
    try:
        return median_seconds(lambda: drift.run(settings), repeat)
    finally:
        drift.windows = real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    root = Path.cwd()
    settings = load_settings(root / "params.yaml")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"import conveyor.checks.drift (fresh interpreter): {import_seconds(repeat):.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        shutil.copy(root / "params.yaml", work)
        for relative in (settings.data.path, settings.data.incoming_path):
            (work / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / relative, work / relative)
        os.chdir(work)
        for step in ("holdout", "batch"):
            if step == "batch":
                ingest.run(settings)
            reference, current, window = frames.windows(settings)
            print(f"{window}: reference {len(reference)} rows, current {len(current)} rows")
            print(f"  windows(): {median_seconds(lambda: frames.windows(settings), repeat):.2f} s")
            print(f"  stat tests only: {stat_tests_seconds(settings, repeat):.2f} s")
            print(f"  drift.run() with report and HTML: {median_seconds(lambda: drift.run(settings), repeat):.2f} s")
            print(f"  drift.run() on 2,000-row samples: {sampled_run_seconds(settings, 2000, repeat):.2f} s")
            wall, cpu = command_seconds(repeat)
            print(f"  `conveyor drift`, whole command: {wall:.2f} s wall, {cpu:.2f} s CPU")
        os.chdir(root)


if __name__ == "__main__":
    main()
