"""The canary analysis against a real Prometheus: the AnalysisTemplate's own queries, read from the rendered
staging overlay with its args substituted, over a stable and a canary `conveyor serve` scraped with the
rollouts_pod_template_hash label the ServiceMonitor adds, judged by its successCondition and failureCondition as
Argo Rollouts does (utils/evaluate/evaluate.go: expr-lang, `result` the vector's values as floats).

A good canary passes, a slow one fails latency-p95, and no traffic is never a pass. Needs Debian's prometheus
(`make prometheus`); skips, saying so, without it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.config import load_settings
from conveyor.serve import smoke
from tests import serving
from tests.conftest import CONVEYOR, ROOT, free_port, wait_for
from tests.support import expr

pytestmark = pytest.mark.integration

PROMETHEUS = shutil.which("prometheus")
NAMESPACE, STABLE, CANARY = "conveyor-staging", "stable0hash", "canary0hash"
MIN_REQUESTS = 20  # the test's own minimum: a few seconds of traffic, not the cluster's window of it


def judged(metric: dict[str, Any], result: list[float]) -> str:
    """Argo Rollouts' EvaluateResult: Failed, Successful or Inconclusive."""
    success = expr.evaluate(metric["successCondition"], {"result": result})
    failure = expr.evaluate(metric["failureCondition"], {"result": result}) if "failureCondition" in metric else None
    if failure is None:
        failure = not success
    if failure:
        return "Failed"
    return "Successful" if success else "Inconclusive"


def analysis(model_version: str) -> dict[str, dict[str, Any]]:
    """The rendered staging AnalysisTemplate's judged metrics, args substituted as the Rollout passes them."""
    out = subprocess.run(
        [str(Path(CONVEYOR).with_name("kubectl")), "kustomize", str(ROOT / "k8s/overlays/staging")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (template,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "AnalysisTemplate"]
    args = {a["name"]: a.get("value") for a in template["spec"]["args"]}
    args |= {"namespace": NAMESPACE, "canary-hash": CANARY, "stable-hash": STABLE, "model-version": model_version}
    args["min-requests"] = str(MIN_REQUESTS)
    metrics = {}
    for metric in template["spec"]["metrics"]:
        if "prometheus" not in metric["provider"]:
            continue
        text = yaml.safe_dump(metric)
        for name, value in args.items():
            text = text.replace("{{args." + name + "}}", str(value))
        metrics[metric["name"]] = yaml.safe_load(text)
    return metrics


class Serve:
    def __init__(self, model_dir: Path, params: Path, cwd: Path) -> None:
        self.port = free_port()
        cwd.mkdir(parents=True, exist_ok=True)
        env = os.environ | {"MODEL_DIR": str(model_dir), "CONVEYOR_PARAMS": str(params), "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [CONVEYOR, "serve", "--port", str(self.port)], cwd=cwd, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def query(prometheus: str, promql: str) -> list[float]:
    """Prometheus' HTTP API, instant query: the vector's values, as Argo Rollouts' provider reads them."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    assert body["data"]["resultType"] == "vector", body
    return [float(sample["value"][1]) for sample in body["data"]["result"]]


@pytest.fixture(scope="module")
def stalling_bundle(serve_split: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(models/, params.yaml) of a canary whose model answers right but 0.3 s late."""
    folder = tmp_path_factory.mktemp("stalling")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"] |= {
        "estimator": "tests.support.slow.StallingClassifier",
        "params": {"max_iter": 500},
        "trusted_types": [*params["model"]["trusted_types"], "numpy.dtype", "tests.support.slow.StallingClassifier"],
    }
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    settings = load_settings(folder / "params.yaml")
    return serving.build(settings, serve_split[0], folder / "bundle"), folder / "params.yaml"


def run_canary(tmp: Path, stable: tuple[Path, Path], canary: tuple[Path, Path], seconds: float) -> dict[str, str]:
    """Serve both, scrape both every second, send `seconds` of load, then judge every metric once."""
    if PROMETHEUS is None:
        pytest.skip("no prometheus binary: run `make prometheus` (scripts/ci/setup-prometheus.sh) for this test")
    servers = {STABLE: Serve(*stable, tmp / "stable"), CANARY: Serve(*canary, tmp / "canary")}
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "conveyor",
                "metrics_path": "/metrics",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{server.port}"],
                        "labels": {"namespace": NAMESPACE, "rollouts_pod_template_hash": hash_},
                    }
                    for hash_, server in servers.items()
                ],
            }
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus = subprocess.Popen(
        [
            PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for server in servers.values():
            wait_for(server.url + "/readyz", timeout=60)
        wait_for(url + "/-/ready", timeout=30)
        settings = load_settings(ROOT / "params.yaml")
        if seconds:
            for server in servers.values():  # the load Job reaches every pod through the all-pods Service
                smoke.load(server.url, settings, rate=15, duration=seconds, workers=8)
        time.sleep(3)  # two more scrapes after the last request
        metrics = analysis(serving.VERSION)
        return {
            name: judged(metric, query(url, metric["provider"]["prometheus"]["query"]))
            for name, metric in metrics.items()
        }
    finally:
        os.killpg(prometheus.pid, signal.SIGTERM)
        prometheus.wait(timeout=30)
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def good(serve_bundle: Path) -> tuple[Path, Path]:
    return serve_bundle, ROOT / "params.yaml"


def test_a_good_canary_passes(tmp_path: Path, good: tuple[Path, Path]) -> None:
    verdicts = run_canary(tmp_path, good, good, seconds=4)
    assert verdicts == dict.fromkeys(
        ("traffic", "error-ratio", "latency-p95", "model-version", "score-shift"), "Successful"
    )


def test_a_slow_canary_fails_latency(
    tmp_path: Path, good: tuple[Path, Path], stalling_bundle: tuple[Path, Path]
) -> None:
    verdicts = run_canary(tmp_path, good, stalling_bundle, seconds=4)
    assert verdicts["latency-p95"] == "Failed", verdicts
    assert verdicts["error-ratio"] == "Successful", verdicts


def test_no_traffic_is_not_a_pass(tmp_path: Path, good: tuple[Path, Path]) -> None:
    verdicts = run_canary(tmp_path, good, good, seconds=0)
    assert verdicts["traffic"] == "Failed", verdicts
    assert verdicts["error-ratio"] == "Inconclusive" and verdicts["latency-p95"] == "Inconclusive", verdicts
