"""Time `conveyor manifests check` (kustomize, kubernetes-validate, CRD schemas, app contract, checkov).

Run from the repository root after `make manifests-check` (which creates .venv-checkov):
    python bench/manifests_check.py [--repeat 3]
It only reads the repository. Prints the median wall and CPU time of the whole command in a fresh
interpreter, the median of each stage as the command reports it, and the load average it ran under.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

STAGE = re.compile(r"^(?P<stage>[\w -]+): (?:ok|FAILED).*\[(?P<seconds>[0-9.]+) s\]$", re.MULTILINE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    conveyor = str(Path(sys.executable).with_name("conveyor"))
    walls, cpus, stages, load = [], [], {}, os.getloadavg()[0]
    for _ in range(repeat):
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        done = subprocess.run([conveyor, "manifests", "check"], capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            sys.exit(f"conveyor manifests check failed:\n{done.stdout}{done.stderr}")
        for match in STAGE.finditer(done.stdout):
            stages.setdefault(match["stage"], []).append(float(match["seconds"]))
    print(f"load average: {load:.1f} before, {os.getloadavg()[0]:.1f} after; {repeat} runs")
    print(
        f"| `conveyor manifests check` | {statistics.median(walls):.1f} s wall, {statistics.median(cpus):.1f} s CPU |"
    )
    for stage, seconds in stages.items():
        print(f"| {stage} | {statistics.median(seconds):.1f} s |")


if __name__ == "__main__":
    main()
