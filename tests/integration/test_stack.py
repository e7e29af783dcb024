"""`make stack` starts the local stack as processes on loopback (MLflow on sqlite, `conveyor serve`, the monitor's
metrics file server, Debian's Prometheus with the alert rules), a second `make stack` finds it running, and
`make stack-down` leaves no process behind. Needs Debian's prometheus (`make prometheus`); skips, saying so,
without it. The stack's ports are fixed (stack/stack.sh): test runs on one machine take turns (a lock file in the
temporary folder), and the test fails, naming the port, when something else holds one."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.config import load_settings
from conveyor.manifests import rules
from conveyor.serve import smoke
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")
PORTS = {"mlflow": 15000, "api": 18080, "monitor-metrics": 19092, "prometheus": 19090}


def taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body[:1] == b"{" else response.status


def make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def stack_ports() -> Iterator[None]:
    """The stack's fixed ports to this test alone among the test runs of this machine (other worktrees' too)."""
    with (Path(tempfile.gettempdir()) / "conveyor-stack-test.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def test_make_stack_starts_everything_and_stack_down_stops_it(
    serve_bundle: Path, tmp_path: Path, stack_ports: None
) -> None:
    if PROMETHEUS is None:
        pytest.skip("no prometheus binary: run `make prometheus` (scripts/ci/setup-prometheus.sh) for this test")
    busy = {name: port for name, port in PORTS.items() if taken(port)}
    assert not busy, f"the stack's ports are taken (a stack already running? make stack-down): {busy}"
    stack = tmp_path / "stack"
    env = os.environ | {"MODEL_DIR": str(serve_bundle), "STACK_DIR": str(stack)}
    pids: dict[str, int] = {}
    try:
        first = make("stack", env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "stack: running" in first.stdout
        pids = {name: int((stack / f"{name}.pid").read_text()) for name in PORTS}
        again = make("stack", env)
        assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
        assert {name: int((stack / f"{name}.pid").read_text()) for name in PORTS} == pids  # nothing restarted

        assert get(f"http://127.0.0.1:{PORTS['mlflow']}/health") == 200
        assert get(f"http://127.0.0.1:{PORTS['api']}/readyz")["status"] == "ready"
        prometheus = f"http://127.0.0.1:{PORTS['prometheus']}"
        deadline = time.monotonic() + 30
        while True:
            targets = get(prometheus + "/api/v1/targets")["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            if health.get("conveyor") == "up" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert health.get("conveyor") == "up", targets
        assert "conveyor-monitor" in health  # reports/monitor.prom, once conveyor monitor wrote it
        loaded = {r["name"] for g in get(prometheus + "/api/v1/rules")["data"]["groups"] for r in g["rules"]}
        written = yaml.safe_load((ROOT / rules.LOCAL_RULES).read_text())
        expected = {r.get("alert") or r["record"] for g in written["groups"] for r in g["rules"]}
        assert loaded == expected
        # The rules evaluate the API's real series: its scrape carries the namespace stack/rules.yml selects.
        # Two bursts a scrape apart: a counter first scraped after all of its traffic has no increase, so no rate.
        for _ in range(2):
            smoke.load(f"http://127.0.0.1:{PORTS['api']}", load_settings(ROOT / "params.yaml"), rate=10, duration=3)
            time.sleep(6)  # stack/prometheus.yml scrapes every 5 s
        rate = "conveyor:predict_requests:rate5m"
        deadline = time.monotonic() + 40
        while True:
            found = get(prometheus + "/api/v1/query?" + urllib.parse.urlencode({"query": rate}))["data"]["result"]
            if (found and float(found[0]["value"][1]) > 0) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert [s["metric"] for s in found] == [{"__name__": rate, "namespace": "conveyor-local"}]
        assert float(found[0]["value"][1]) > 0
    finally:
        down = make("stack-down", env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert [name for name, pid in pids.items() if alive(pid)] == []
    assert list(stack.glob("*.pid")) == []
    assert {name: port for name, port in PORTS.items() if taken(port)} == {}
