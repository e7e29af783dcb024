"""Every panel of the Grafana dashboard (k8s/monitoring/dashboard/conveyor.json) against a real Prometheus that
scraped a real `conveyor serve` (the pipeline run's bundle) after real traffic, and the monitor's metrics (served
over HTTP on loopback as the Pushgateway would): each query, template variables substituted, must evaluate without
an error and return data. Needs Debian's prometheus (`make prometheus`); skips, saying so, without it.

The API logs every request and scores a shadow (the same bundle), and is scraped with the labels the
ServiceMonitor adds in a cluster (namespace, rollouts_pod_template_hash), so the canary-vs-stable panels have their
ReplicaSet label. The monitor's metrics are what a real `conveyor monitor` wrote on that API's log, served to
Prometheus as a Pushgateway would."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from conveyor.checks import holdout
from conveyor.serve import smoke
from tests.conftest import CONVEYOR, ROOT, Project, copy_project, free_port, wait_for
from tests.support import served

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")
DASHBOARD = ROOT / "k8s/monitoring/dashboard/conveyor.json"
NAMESPACE, HASH = "conveyor-staging", "stable0hash"
VARIABLES = {"$namespace": NAMESPACE, "$__rate_interval": "1m", "${datasource}": "prometheus"}
METRIC = re.compile(r"\b(conveyor_[a-z0-9_]+)")


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield from panels(panel) if panel.get("type") == "row" and panel.get("panels") else [panel]


def targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, query with the template variables substituted) of every panel's targets."""
    found = []
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        for target in panel.get("targets") or []:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            found.append((panel["title"], expr))
    return found


def test_every_panel_queries_prometheus() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "conveyor"
    found = targets(dashboard)
    assert len(found) >= 20
    for title, expr in found:
        assert "$" not in expr, f"{title}: unsubstituted variable in {expr}"
        assert METRIC.search(expr), f"{title}: queries no conveyor series: {expr}"


class _Monitor(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def query(prometheus: str, promql: str) -> dict[str, Any]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 400 on a bad query: its error is the body
        return json.loads(exc.read())


@pytest.fixture(scope="module")
def prometheus(pipeline_run: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus on loopback that has scraped the API (the bundle the session's pipeline run's gate exported,
    logging every request, with a shadow) after some traffic and feedback, and the metrics `conveyor monitor` wrote
    on that log."""
    if PROMETHEUS is None:
        pytest.skip("no prometheus binary: run `make prometheus` (scripts/ci/setup-prometheus.sh) for this test")
    tmp = tmp_path_factory.mktemp("dashboard")
    project = copy_project(pipeline_run, tmp / "project")
    models, log = project.root / "models", project.root / "log"
    settings = project.settings
    scored = holdout.score(settings, models)
    rows = scored.x.head(1000)
    labels = [settings.data.positive_label if y else settings.serve.prediction_log.negative_label for y in scored.y]
    api, base = served.serve(
        models, tmp, {"sample": 1.0}, {"PREDICTION_LOG_DIR": str(log)}, "--shadow-model-dir", str(models),
        params=project.root,
    )  # fmt: skip
    start = datetime.now(UTC)
    monitor = ThreadingHTTPServer(("127.0.0.1", 0), _Monitor)
    threading.Thread(target=monitor.serve_forever, daemon=True).start()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "conveyor",
                "static_configs": [
                    {
                        "targets": [base.removeprefix("http://")],
                        "labels": {"namespace": NAMESPACE, "rollouts_pod_template_hash": HASH},
                    }
                ],
            },
            {
                "job_name": "conveyor-monitor",
                "honor_labels": True,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{monitor.server_address[1]}"], "labels": {"namespace": NAMESPACE}}
                ],
            },
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom_port = free_port()
    server = subprocess.Popen(
        [
            PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{prom_port}"
    try:
        wait_for(url + "/-/ready", timeout=30)
        served.replay(base, rows, labels[: len(rows)], "dashboard")
        smoke.load(base, settings, rate=15, duration=4, workers=8)
        time.sleep(2)  # the log's writer flushes every 50 ms; the shadow scores in it
        run = subprocess.run(
            [CONVEYOR, "monitor", "--log", "log", "--since", start.isoformat(), "--deployed-version", "1",
             "--environment", "staging"],
            cwd=project.root, env=project.env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert (project.root / "reports/monitor.prom").is_file(), run.stdout + run.stderr
        _Monitor.body = (project.root / "reports/monitor.prom").read_bytes()
        time.sleep(3)  # a few scrapes of both
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        served.stop(api)
        monitor.shutdown()


def test_every_panel_returns_data(prometheus: str) -> None:
    names = query(prometheus, 'count by (__name__) ({__name__=~"conveyor_.+"})')
    exposed = {r["metric"]["__name__"] for r in names["data"]["result"]}
    assert "conveyor_monitor_drift_share" in exposed and "conveyor_http_requests_total" in exposed, exposed
    # What counts as a failure below: a query Prometheus refuses, and one that finds nothing.
    assert query(prometheus, "sum(conveyor_http_requests_total")["status"] == "error"
    assert query(prometheus, "conveyor_no_such_series")["data"]["result"] == []
    failures = []
    for title, expr in targets(json.loads(DASHBOARD.read_text())):
        body = query(prometheus, expr)
        if body.get("status") != "success":
            failures.append(f"{title}: {body.get('error')}: {expr}")
        elif not body["data"]["result"]:
            failures.append(f"{title}: empty result: {expr}")
    assert not failures, "\n".join(failures)
