"""Time the data-quality check (`conveyor quality`) on the real data, and show where the time goes.

Run from the repository root after `conveyor data fetch`:  python bench/quality.py [--repeat 3]
Works in a temporary copy of params.yaml and the data, so reports/ is left alone. Prints the median
wall time of the whole command in a fresh interpreter, of importing the check, of loading the data,
and of the GX run itself (suite, validation, Data Docs).
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

from conveyor.checks import quality
from conveyor.config import load_settings
from conveyor.data import frames


def command_seconds(command: list[str], repeat: int) -> str:
    """Median wall time and CPU time (user + system) of a command; CPU time hardly moves on a busy machine."""
    walls, cpus = [], []
    for _ in range(repeat):
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return f"{statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    root = Path.cwd()
    settings = load_settings(root / "params.yaml")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        shutil.copy(root / "params.yaml", work)
        (work / settings.data.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / settings.data.path, work / settings.data.path)
        os.chdir(work)
        frame = frames.load_training(settings)
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"training data: {len(frame)} rows, {len(frame.columns)} columns; {os.cpu_count()} cores, load {load}")
        cli = [sys.executable, "-m", "conveyor.cli", "quality"]
        print(f"`conveyor quality` (fresh interpreter): {command_seconds(cli, repeat)}")
        imports = [sys.executable, "-c", "import conveyor.checks.quality"]
        print(f"  import conveyor.checks.quality: {command_seconds(imports, repeat)}")
        print(f"  load_training(): {median_seconds(lambda: frames.load_training(settings), repeat):.2f} s")
        print(
            f"  validate() (GX run + Data Docs): {median_seconds(lambda: quality.validate(frame, settings), repeat):.2f} s"
        )
        os.chdir(root)


if __name__ == "__main__":
    main()
