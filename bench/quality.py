"""Time the data-quality check (`conveyor validate`) on the real data, and show where the time goes.

Run from the repository root after `conveyor data fetch`:  python bench/quality.py [--repeat 3]
Works in a temporary copy of params.yaml and the data, so reports/ is left alone. Prints the median
wall time of the whole command in a fresh interpreter, of importing the check, of loading the data,
and of the GX run itself (suite, validation, Data Docs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from conveyor import data
from conveyor.checks import quality
from conveyor.config import load_settings


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command_seconds(command: list[str], repeat: int) -> float:
    return median_seconds(lambda: subprocess.run(command, check=True, capture_output=True), repeat)


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
        frame = data.load_training(settings)
        print(f"training data: {len(frame)} rows, {len(frame.columns)} columns; {os.cpu_count()} cores")
        cli = [sys.executable, "-m", "conveyor.cli", "validate"]
        print(f"`conveyor validate` (fresh interpreter): {command_seconds(cli, repeat):.2f} s")
        imports = [sys.executable, "-c", "import conveyor.checks.quality"]
        print(f"  import conveyor.checks.quality: {command_seconds(imports, repeat):.2f} s")
        print(f"  load_training(): {median_seconds(lambda: data.load_training(settings), repeat):.2f} s")
        print(
            f"  validate() (GX run + Data Docs): {median_seconds(lambda: quality.validate(frame, settings), repeat):.2f} s"
        )
        os.chdir(root)


if __name__ == "__main__":
    main()
