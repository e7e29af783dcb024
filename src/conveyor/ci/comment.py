"""The pull-request comment: the gate table and `dvc metrics diff` against main's latest reports.

Main's reports come from its last CI run (an artifact), not from git: reports/ is not committed. To let
`dvc metrics diff` compare them anyway, they are written into a throwaway commit on top of HEAD (a temporary
index, `git commit-tree`; no branch or ref moves), and DVC diffs that commit against the workspace."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from conveyor.ci.github import gate_report
from conveyor.config import significant
from conveyor.errors import ConveyorError
from conveyor.gate.report import PLOTS_PAGE, PLOTS_TEXT, clip, default_link, labels, readable
from conveyor.gate.verdict import collect
from conveyor.paths import REPORTS

MARKER = "<!-- conveyor-gate -->"
LIMIT = 65_536  # GitHub refuses a comment longer than this many characters
BASELINE_NAME = "main"
METRICS = "metrics."
_IDENTITY = {
    "GIT_AUTHOR_NAME": "conveyor",
    "GIT_AUTHOR_EMAIL": "conveyor@localhost",
    "GIT_COMMITTER_NAME": "conveyor",
    "GIT_COMMITTER_EMAIL": "conveyor@localhost",
}


def _git(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        raise ConveyorError(f"`git {' '.join(args)}` failed: {said[-1] if said else done.returncode}.")
    return done.stdout.strip()


def baseline_commit(baseline: Path, reports: Path = REPORTS) -> str | None:
    """A commit whose tree is HEAD's plus the baseline's JSON reports under reports/; None with no reports."""
    files = sorted(baseline.glob("*.json")) if baseline.is_dir() else []
    if not files:
        return None
    with tempfile.TemporaryDirectory(prefix="conveyor-index-") as folder:
        env = os.environ | _IDENTITY | {"GIT_INDEX_FILE": str(Path(folder) / "index")}
        _git("read-tree", "HEAD", env=env)
        for path in files:
            blob = _git("hash-object", "-w", "--", str(path), env=env)
            _git("update-index", "--add", "--cacheinfo", f"100644,{blob},{(reports / path.name).as_posix()}", env=env)
        tree = _git("write-tree", env=env)
        return _git("commit-tree", tree, "-p", "HEAD", "-m", "conveyor: main's reports, for dvc metrics diff", env=env)


def metrics_diff(baseline: Path, reports: Path = REPORTS) -> str:
    """`dvc metrics diff` of main's reports against this workspace, as Markdown, or a sentence saying why not.

    The headline metrics (one level under `metrics`, the ones the gate reads) come first; the breakdowns per
    group or per column follow in a collapsed section. Metrics are named as the gate table names them."""
    commit = baseline_commit(baseline)
    if commit is None:
        return f"No reports from {BASELINE_NAME} to compare with yet: its CI has not uploaded any.\n"
    done = subprocess.run(["dvc", "metrics", "diff", commit, "--json"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        raise ConveyorError(f"`dvc metrics diff` failed: {said[-1] if said else done.returncode}.")
    changed = json.loads(done.stdout or "{}")
    rows = [
        (Path(path).stem, key.removeprefix(METRICS), change)
        for path, keys in changed.items()
        for key, change in keys.items()
        if key.startswith(METRICS)
    ]
    if not rows:
        return f"No metric differs from {BASELINE_NAME}.\n"
    known = labels(collect(reports))
    headline = [(report, readable(key, known), change) for report, key, change in rows if "." not in key]
    detail = [(report, readable(key, known), change) for report, key, change in rows if "." in key]
    parts = [_table(headline)] if headline else []
    if detail:
        summary = f"{len(detail)} more: per group and per column"
        parts.append(f"<details><summary>{summary}</summary>\n\n{_table(detail)}\n</details>")
    return "\n\n".join(parts) + "\n"


def _table(rows: list[tuple[str, str, dict[str, Any]]]) -> str:
    lines = [f"| report | metric | {BASELINE_NAME} | this change | change |", "|---|---|---:|---:|---:|"]
    for report, metric, change in rows:
        old, new, diff = _number(change.get("old")), _number(change.get("new")), _number(change.get("diff"), True)
        lines.append(f"| {report} | {metric.replace('|', '/')} | {old} | {new} | {diff} |")
    return "\n".join(lines)


def _number(value: Any, sign: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return significant(value, sign=sign)
    return str(value).replace("|", "/")


def render(baseline: Path, run_url: str | None) -> str:
    """The whole comment body, under GitHub's limit on a comment's length: the gate table gives way first in its
    warnings and passing rows (never its heading, nor a failure while they fit in three quarters of the limit),
    then the metrics diff. The marker lets anyone find (and the sticky-comment action replace) it."""
    _, table = gate_report()
    plots = default_link()(PLOTS_PAGE.as_posix())
    tail = [f"[{PLOTS_TEXT}]({plots})"]
    if run_url:
        tail.append(f"Reports (open `index.html` first) and the full logs: {run_url}")
    heading = f"#### Metrics against {BASELINE_NAME}"
    room = LIMIT - len(MARKER) - len(heading) - sum(len(line) + 2 for line in tail) - 16
    gate = clip(table, room * 3 // 4)
    diff = clip(metrics_diff(baseline), room - len(gate))
    parts = [MARKER, gate.strip(), "", heading, "", diff.strip(), "", *tail]
    return "\n".join(parts) + "\n"
