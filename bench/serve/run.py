"""Serving benchmark, one run, side by side: single-record predict over HTTP with `wrk` (one thread, 1 and 32
connections) against the Conveyor API, `mlflow models serve` of the same model folder, and the HTTP floor (a
FastAPI endpoint that parses the body and returns a constant); then the in-process predict latency.
With --prediction-log: the Conveyor API four times instead, with the prediction log off and writing files at
0%, 10% and 100% sampling, at 32 connections, and each one's requests/s as a share of the log-off server's.

From the repository root, with the bundle exported to models/ and `wrk` installed:
    python bench/serve/run.py [--model-dir models] [--seconds 10] [--rounds 3] [--prediction-log]
Every server runs one worker on loopback. The rounds interleave the servers, so a change in the machine's load
touches them all; each figure is the median over the rounds (a ratio: the median of the rounds' ratios). Results
go to bench/serve/results.json (log-results.json) and a Markdown table."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from conveyor.config import DEFAULT_PARAMS, PARAMS_ENV, load_settings
from conveyor.serve import loading, routes
from conveyor.serve.metrics import Metrics
from conveyor.serve.recorder import FileSink, Recorder
from conveyor.serve.schema import RequestSchema

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
CONNECTIONS = (1, 32)
LOG_OFF = "log off"
LOG_SAMPLES = (0.0, 0.1, 1.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str, body: bytes | None = None) -> bool:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def wait_until(check: Any, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not become ready within {timeout:.0f} s")
        time.sleep(0.5)


def targets(model_dir: Path, work: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each server: command, environment, predict URL, request body, readiness check."""
    single = json.dumps(record).encode()
    mlflow_body = json.dumps({"dataframe_records": [record]}).encode()
    mlflow_env = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    specs = []
    for name, env in (("mlflow", mlflow_env), ("mlflow, OMP_NUM_THREADS=1", {**mlflow_env, "OMP_NUM_THREADS": "1"})):
        port = free_port()
        command = [str(BIN / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local"]
        specs.append(
            {
                "name": name,
                "command": [*command, "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                "env": env,
                "url": f"http://127.0.0.1:{port}/invocations",
                "body": mlflow_body,
                "ready": f"http://127.0.0.1:{port}/ping",
            }
        )
    port = free_port()
    specs.append(
        {
            "name": "conveyor",
            "command": [str(BIN / "conveyor"), "serve", "--port", str(port)],
            "env": {"MODEL_DIR": str(model_dir)},
            "url": f"http://127.0.0.1:{port}{routes.PREDICT}",
            "body": single,
            "ready": f"http://127.0.0.1:{port}{routes.READY}",
        }
    )
    port = free_port()
    specs.append(
        {
            "name": "HTTP floor",
            "command": [
                *(str(BIN / "python"), "-m", "uvicorn", "--app-dir", str(HERE), "floor:app"),
                *("--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"),
            ],
            "env": {},
            "url": f"http://127.0.0.1:{port}{routes.PREDICT}",
            "body": single,
            "ready": None,
        }
    )
    for spec in specs:
        spec["body_file"] = work / f"{spec['name'].split(',')[0].replace(' ', '-')}.json"
        spec["body_file"].write_bytes(spec["body"])
    return specs


def log_targets(model_dir: Path, work: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """This API with the prediction log off, then writing files at each of LOG_SAMPLES (own params.yaml copy)."""
    params = yaml.safe_load(Path(os.environ.get(PARAMS_ENV) or DEFAULT_PARAMS).read_text())
    specs = []
    for sample in (None, *LOG_SAMPLES):
        name = LOG_OFF if sample is None else f"log {sample:.0%}"
        env = {"MODEL_DIR": str(model_dir)}
        if sample is not None:
            slug = f"{sample * 100:.0f}"
            params["serve"]["prediction_log"]["sample"] = sample
            (work / f"params-{slug}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            env |= {PARAMS_ENV: str(work / f"params-{slug}.yaml"), "PREDICTION_LOG_DIR": str(work / f"log-{slug}")}
        port = free_port()
        specs.append(
            {
                "name": name,
                "command": [str(BIN / "conveyor"), "serve", "--port", str(port)],
                "env": env,
                "url": f"http://127.0.0.1:{port}{routes.PREDICT}",
                "metrics": f"http://127.0.0.1:{port}{routes.METRICS}",
                "body": json.dumps(record).encode(),
                "ready": f"http://127.0.0.1:{port}{routes.READY}",
                "body_file": work / "conveyor.json",
            }
        )
    specs[0]["body_file"].write_bytes(specs[0]["body"])
    return specs


def log_series(url: str) -> dict[str, float]:
    """The prediction log's counters of one server (records handed, written, dropped), by series and label."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    pattern = r"^conveyor_prediction_log_(records|written|dropped)_total\{\w+=\"(\w+)\"\} (\S+)$"
    return {f"{kind} {label}": float(value) for kind, label, value in re.findall(pattern, text, re.MULTILINE)}


def log_in_process(model_dir: Path, record: dict[str, Any], calls: int) -> dict[str, Any]:
    """CPU time in this process, one thread: a single-record request's own work (validate, predict, label) and
    what logging it adds: the draw and the append on the request path, then the writer's part (the record built,
    encoded and written to a file). CPU time, unlike wall time, is not stretched by other jobs' load."""
    settings = load_settings()
    loaded = loading.load(model_dir, settings)
    schema = RequestSchema(settings)
    labels = (settings.serve.prediction_log.negative_label, settings.data.positive_label)

    def handler() -> tuple[list[dict[str, Any]], list[float], list[int]]:
        records, _ = schema.validate(record)
        proba = loaded.predictor.proba(records)
        return records, proba.tolist(), loaded.decision.record_labels(records, proba).tolist()

    def cpu_us(call: Any, count: int) -> float:
        started = time.thread_time_ns()
        for _ in range(count):
            call()
        return (time.thread_time_ns() - started) / 1e3 / count

    records, scores, answer = handler()
    with tempfile.TemporaryDirectory(prefix="bench-log-") as tmp:
        config = settings.serve.prediction_log.model_copy(update={"sample": 1.0, "dir": Path(tmp)})
        metrics = Metrics(routes.ALL)
        recorder = Recorder(config, labels, metrics, [FileSink(Path(tmp), config, metrics)])
        batch = min(calls, config.queue_records)

        def append() -> None:
            if recorder.sampled():
                recorder.offer("0123456789abcdef0123456789abcdef", "1", records, scores, answer, True)

        cpu_us(handler, calls // 10)
        request = cpu_us(handler, calls)
        for _ in range(2):  # the first round warms up (the file opened, memory mapped); the second is measured
            appended = cpu_us(append, batch)
            started = time.thread_time_ns()
            recorder.drain()
            written = (time.thread_time_ns() - started) / 1e3 / batch
        recorder.close()
    return {
        "request_cpu_us": round(request, 1),
        "append_cpu_us": round(appended, 2),
        "writer_cpu_us_per_record": round(written, 1),
        "records": batch,
    }


def log_goals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each logging server's requests/s and p99 against the log-off server's in the same round; medians."""
    out = {}
    for sample in LOG_SAMPLES:
        name = f"log {sample:.0%}"
        pairs = [
            (r, next(o for o in runs if o["target"] == LOG_OFF and o["round"] == r["round"]))
            for r in runs
            if r["target"] == name
        ]
        out[name] = {
            "requests_per_s_vs_log_off": round(
                statistics.median(r["requests_per_s"] / o["requests_per_s"] for r, o in pairs), 3
            ),
            "p99_vs_log_off": round(statistics.median(r["p99_ms"] / o["p99_ms"] for r, o in pairs), 3),
            "server_cpu_per_request_vs_log_off": round(
                statistics.median(r["server_cpu_us_per_request"] / o["server_cpu_us_per_request"] for r, o in pairs), 3
            ),
        }
    out["log 10%: cost at most 5% of requests/s"] = out["log 10%"]["requests_per_s_vs_log_off"] >= 0.95
    return out


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * UNITS[unit]


def wrk(url: str, body_file: Path, connections: int, seconds: int) -> dict[str, Any]:
    """One wrk run: requests/s, p50 and p99 in ms, and any non-2xx answers or socket errors."""
    done = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            "--latency",
            "-s",
            str(HERE / "post.lua"),
            url,
        ],
        env=os.environ | {"BODY_FILE": str(body_file)},
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "connections": connections,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(percentiles["50"]),
        "p99_ms": _ms(percentiles["99"]),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def in_process(model_dir: Path, record: dict[str, Any], calls: int) -> dict[str, Any]:
    """Single-record predict latency in this process: the fast path, the whole request path minus HTTP
    (validate, predict, label), and the scikit-learn Pipeline for reference."""
    settings = load_settings()
    loaded = loading.load(model_dir, settings)
    schema = RequestSchema(settings)

    def handler() -> None:
        records, _ = schema.validate(record)
        loaded.decision.record_labels(records, loaded.predictor.proba(records))

    cases = {
        f"{loaded.predictor.name} path: proba": (lambda: loaded.predictor.proba([record]), calls),
        f"{loaded.predictor.name} path: validate + proba + label": (handler, calls),
        "scikit-learn Pipeline: predict_proba": (lambda: loaded.reference.proba([record]), calls // 10),
    }
    out = {}
    for name, (call, count) in cases.items():
        for _ in range(count // 10):
            call()
        times = []
        for _ in range(count):
            started = time.perf_counter_ns()
            call()
            times.append(time.perf_counter_ns() - started)
        micros = np.array(times) / 1e3
        out[name] = {
            "calls": count,
            "p50_us": round(float(np.percentile(micros, 50)), 1),
            "p99_us": round(float(np.percentile(micros, 99)), 1),
        }
    return out


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per server and connection count, the median of the rounds (each figure on its own), the errors summed
    and the load range seen."""
    out = []
    for key in dict.fromkeys((r["target"], r["connections"]) for r in runs):
        mine = [r for r in runs if (r["target"], r["connections"]) == key]
        out.append(
            {
                "target": key[0],
                "connections": key[1],
                "rounds": len(mine),
                **{
                    k: statistics.median(r[k] for r in mine)
                    for k in ("requests_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_request")
                },
                "errors": sum(r["non_2xx"] + r["socket_errors"] for r in mine),
                "load_average_1m": [min(r["load_average_1m"] for r in mine), max(r["load_average_1m"] for r in mine)],
            }
        )
    return out


def goals(http: list[dict[str, Any]], inproc: dict[str, Any]) -> dict[str, Any]:
    at32 = {r["target"]: r for r in http if r["connections"] == 32}
    ours, floor = at32["conveyor"], at32["HTTP floor"]
    mlflow = max((r for name, r in at32.items() if name.startswith("mlflow")), key=lambda r: r["requests_per_s"])
    fast = next(v for k, v in inproc.items() if k.endswith(": proba"))
    return {
        "throughput vs best MLflow (>= 5x)": round(ours["requests_per_s"] / mlflow["requests_per_s"], 1),
        "p99 vs best MLflow (<= 0.2)": round(ours["p99_ms"] / mlflow["p99_ms"], 3),
        "throughput vs HTTP floor (>= 0.6)": round(ours["requests_per_s"] / floor["requests_per_s"], 2),
        "in-process single-record p99 (<= 1000 us)": fast["p99_us"],
    }


def table(http: list[dict[str, Any]]) -> str:
    lines = [
        "| server | connections | requests/s | p50 ms | p99 ms | server CPU µs/request | errors | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(http, key=lambda r: (r["connections"], -r["requests_per_s"])):
        low, high = r["load_average_1m"]
        lines.append(
            f"| {r['target']} | {r['connections']} | {r['requests_per_s']:,.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['server_cpu_us_per_request']:.0f} | {r['errors']} | {low} to {high} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all servers; figures are medians")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load before each measured run")
    parser.add_argument("--calls", type=int, default=20000, help="in-process calls per fast-path case")
    parser.add_argument("--prediction-log", action="store_true", help="this API with the log off, at 0%%, 10%%, 100%%")
    parser.add_argument("--out", type=Path, default=None, help="default: results.json (log-results.json) here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    model_dir = args.model_dir.resolve()
    record = loading.probe_records(load_settings(), rows=1, seed=7)[0]
    connections = (32,) if args.prediction_log else CONNECTIONS
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        specs = (log_targets if args.prediction_log else targets)(model_dir, work, record)
        servers = []
        try:
            for spec in specs:
                log = (work / f"{len(servers)}.log").open("w")
                servers.append(
                    subprocess.Popen(
                        spec["command"], env=os.environ | spec["env"], stdout=log, stderr=log, start_new_session=True
                    )
                )
                spec["pid"] = servers[-1].pid
            for spec in specs:
                check = spec["ready"]
                wait_until(
                    (lambda s=spec: answers(s["ready"])) if check else (lambda s=spec: answers(s["url"], s["body"])),
                    spec["name"],
                )
                if not answers(spec["url"], spec["body"]):
                    raise SystemExit(f"{spec['name']}: the predict request is refused")
            runs = measure(specs, connections, args)
            logged = {spec["name"]: log_series(spec["metrics"]) for spec in specs if "metrics" in spec}
        finally:
            for server in servers:  # each server and the workers it spawned: the group it leads
                os.killpg(server.pid, signal.SIGTERM)
            for server in servers:
                server.wait(timeout=60)
    http = summarize(runs)
    report: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "http": http,
    }
    if args.prediction_log:
        inproc = log_in_process(model_dir, record, args.calls)
        off = next(r for r in http if r["target"] == LOG_OFF)["server_cpu_us_per_request"]
        logged_cost = inproc["append_cpu_us"] + inproc["writer_cpu_us_per_record"]
        inproc["cost_per_request_at"] = {
            f"{sample:.0%}": f"{sample * logged_cost / off:.2%} of the log-off server's {off:.0f} µs"
            for sample in LOG_SAMPLES
        }
        report |= {"prediction_log": logged, "in_process": inproc, "goals": log_goals(runs), "runs": runs}
    else:
        inproc = in_process(model_dir, record, args.calls)
        report |= {"runs": runs, "in_process": inproc, "goals": goals(http, inproc)}
    out = args.out or HERE / ("log-results.json" if args.prediction_log else "results.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(http))
    print(json.dumps({k: v for k, v in report.items() if k in ("in_process", "prediction_log", "goals")}, indent=2))
    return 0


def measure(
    specs: list[dict[str, Any]], connections: tuple[int, ...], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every round: for each connection count, each server in turn, a warm-up then a measured wrk run."""
    runs = []
    for round_ in range(args.rounds):
        for count in connections:
            for spec in specs:
                wrk(spec["url"], spec["body_file"], 32, args.warmup)
                cpu = cpu_seconds(spec["pid"])
                result = wrk(spec["url"], spec["body_file"], count, args.seconds)
                result["server_cpu_us_per_request"] = round(
                    (cpu_seconds(spec["pid"]) - cpu) * 1e6 / result["requests"], 1
                )
                runs.append({"target": spec["name"], "round": round_, **result})
                print(
                    f"round {round_} {spec['name']:>26} c={count:<3} {result['requests_per_s']:>9,.0f}"
                    f" req/s  p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms"
                    f"  server CPU {result['server_cpu_us_per_request']} µs/request  load {result['load_average_1m']}",
                    flush=True,
                )
    return runs


if __name__ == "__main__":
    sys.exit(main())
