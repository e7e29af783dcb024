"""The fast path for each estimator a fork may configure, side by side in one run: single-record predict latency
in process (the fast path, the scikit-learn fallback, and the HistGradientBoosting fast path as the yardstick),
then HTTP requests/s of `conveyor serve` with each model against the HTTP floor.

From the repository root, after `make data`, with `wrk` installed:
    OMP_NUM_THREADS=1 python bench/serve/estimators.py [--rounds 5] [--calls 2000] [--seconds 8] [--http-rounds 3]

Each model is the Pipeline `training.model.build_pipeline` gives its estimator, fitted on the whole training split,
at scikit-learn's default size (HistGradientBoosting: params.yaml's, 200 trees), and the forests also at 20 trees.
In process, every round runs every (model, path) case in turn for --calls single-record calls (a tenth of that for
the slow fallback), cycling over 64 probe records; the figures are the medians over rounds of each round's p50 and
p99. Over HTTP, each model is exported to its own bundle (the skops types it needs added to a copy of params.yaml),
served by one `conveyor serve` worker, and every round runs `wrk` at 32 connections on each server in turn, the
floor included, reading the server's CPU time around each run. Results go to bench/serve/estimators-results.json
and two Markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import skops.io
import yaml
from run import BIN, HERE, answers, free_port, wait_until, wrk

from conveyor import bundle
from conveyor.config import Settings, load_settings
from conveyor.data import frames
from conveyor.decision import Decision
from conveyor.paths import TRAINED_MODEL
from conveyor.serve import loading, routes
from conveyor.serve.reference import PipelinePredictor
from conveyor.training import model

ROOT = HERE.parents[1]
BASELINE = "HistGradientBoosting"
SIZES: dict[str, tuple[str, dict[str, Any]]] = {  # name: (estimator, params); None: params.yaml's model
    BASELINE: ("", {}),
    "RandomForest (100 trees)": ("sklearn.ensemble.RandomForestClassifier", {"random_state": 0}),
    "ExtraTrees (100 trees)": ("sklearn.ensemble.ExtraTreesClassifier", {"random_state": 0}),
    "RandomForest (20 trees)": ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 20, "random_state": 0}),
    "ExtraTrees (20 trees)": ("sklearn.ensemble.ExtraTreesClassifier", {"n_estimators": 20, "random_state": 0}),
    "GradientBoosting (100 trees, depth 3)": ("sklearn.ensemble.GradientBoostingClassifier", {"random_state": 0}),
    "LogisticRegression": ("sklearn.linear_model.LogisticRegression", {"max_iter": 1000}),
    "SGDClassifier (log_loss)": ("sklearn.linear_model.SGDClassifier", {"loss": "log_loss", "random_state": 0}),
}


def configured(settings: Settings, estimator: str, params: dict[str, Any]) -> Settings:
    if not estimator:
        return settings
    return settings.model_copy(
        update={"model": settings.model.model_copy(update={"estimator": estimator, "params": params})}
    )


def timings(call: Callable[[Any], Any], records: list[Any], count: int) -> tuple[list[float], list[float]]:
    """Wall-clock and this thread's CPU time of each call, in microseconds. On a machine shared with other jobs
    the wall-clock tail is mostly time spent preempted; the CPU time is what the call itself costs."""
    wall, cpu = [], []
    for i in range(count):
        record = records[i % len(records) : i % len(records) + 1]
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        call(record)
        cpu.append((time.thread_time_ns() - started_cpu) / 1e3)
        wall.append((time.perf_counter_ns() - started) / 1e3)
    return wall, cpu


def in_process(models: dict[str, Any], settings: Settings, rounds: int, calls: int) -> dict[str, Any]:
    """Per (model, path): the medians over rounds of each round's p50 and p99, in microseconds."""
    records = loading.probe_records(settings, rows=64, seed=7)
    cases: dict[str, tuple[Callable[[Any], Any], int]] = {}
    for name, (pipeline, chosen) in models.items():
        cases[f"{name}: {chosen.name} path"] = (chosen.proba, calls)
        if chosen.name == "fast":
            cases[f"{name}: scikit-learn fallback"] = (
                PipelinePredictor(pipeline, settings.data.features).proba,
                calls // 10,
            )
    seen: dict[str, list[dict[str, float]]] = {case: [] for case in cases}
    for round_ in range(rounds):
        for case, (call, count) in cases.items():
            timings(call, records, max(count // 10, 5))  # warm the case's caches after the others ran
            wall, cpu = timings(call, records, count)
            seen[case].append(
                {
                    f"{what}_{q}_us": float(np.percentile(v, int(q[1:])))
                    for what, v in (("wall", wall), ("cpu", cpu))
                    for q in ("p50", "p99")
                }
            )
        print(f"in-process round {round_} done (load {os.getloadavg()[0]:.1f})", flush=True)
    return {
        case: {"calls_per_round": cases[case][1]}
        | {key: round(statistics.median(r[key] for r in runs), 1) for key in runs[0]}
        for case, runs in seen.items()
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def export(name: str, pipeline: Any, settings: Settings, folder: Path) -> tuple[Path, Path]:
    """A bundle as the gate exports it, and a params.yaml trusting the skops types this model needs."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["model"] |= {"estimator": settings.model.estimator, "params": settings.model.params}
    needed = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    raw["model"]["trusted_types"] = sorted(set(raw["model"]["trusted_types"]) | set(needed))
    folder.mkdir(parents=True)
    params = folder / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    with contextlib.chdir(folder):
        TRAINED_MODEL.mkdir(parents=True)
        skops.io.dump(pipeline, TRAINED_MODEL / bundle.MODEL_FILE)
        Decision(threshold=settings.model.decision_threshold).save(TRAINED_MODEL)
        info = {"run_id": "bench", "git_commit": "0" * 40, "data_version": "bench"}
        models = bundle.export(load_settings(params), "1", info, {"model": name})
    return folder / models, params


def http(bundles: dict[str, tuple[Path, Path]], record: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """requests/s (median over rounds) per server at 32 connections, and each against the floor."""
    work = Path(tempfile.mkdtemp(prefix="bench-estimators-"))
    body = work / "body.json"
    body.write_text(json.dumps(record))
    specs = []
    for name, (models, params) in bundles.items():
        port = free_port()
        command = [str(BIN / "conveyor"), "serve", "--port", str(port)]
        env = {"MODEL_DIR": str(models), "CONVEYOR_PARAMS": str(params)}
        url = f"http://127.0.0.1:{port}"
        specs.append((name, command, env, url + routes.PREDICT, url + routes.READY))
    port = free_port()
    floor = [str(BIN / "python"), "-m", "uvicorn", "--app-dir", str(HERE), "floor:app", "--port", str(port)]
    floor += ["--host", "127.0.0.1", "--no-access-log", "--log-level", "warning"]
    floor_url = f"http://127.0.0.1:{port}{routes.PREDICT}"
    specs.append(("HTTP floor", floor, {}, floor_url, None))
    servers = []
    try:
        for _, command, env, _, _ in specs:
            log = (work / f"{len(servers)}.log").open("w")
            servers.append(
                subprocess.Popen(command, env=os.environ | env, stdout=log, stderr=log, start_new_session=True)
            )
        for name, _, _, url, ready in specs:
            check = (lambda r=ready: answers(r)) if ready else (lambda u=url: answers(u, body.read_bytes()))
            wait_until(check, name)
        runs: dict[str, list[float]] = {name: [] for name, *_ in specs}
        cpu: dict[str, list[float]] = {name: [] for name, *_ in specs}
        for round_ in range(args.http_rounds):
            for (name, _, _, url, _), server in zip(specs, servers, strict=True):
                wrk(url, body, 32, args.warmup)
                before = cpu_seconds(server.pid)
                result = wrk(url, body, 32, args.seconds)
                used = cpu_seconds(server.pid) - before
                if result["non_2xx"] or result["socket_errors"]:
                    raise SystemExit(f"{name}: {result['non_2xx']} non-2xx answers, {result['socket_errors']} errors")
                runs[name].append(result["requests_per_s"])
                cpu[name].append(used / result["requests"] * 1e6)
                print(
                    f"http round {round_} {name:>40} {result['requests_per_s']:>8,.0f} req/s"
                    f" {cpu[name][-1]:>6.0f} CPU us/request  load {result['load_average_1m']}",
                    flush=True,
                )
    finally:
        for server in servers:  # each server and what it spawned: the group it leads
            os.killpg(server.pid, signal.SIGTERM)
        for server in servers:
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    floor_rps, floor_cpu = statistics.median(runs["HTTP floor"]), statistics.median(cpu["HTTP floor"])
    return {
        name: {
            "requests_per_s": round(statistics.median(r)),
            "vs_floor": round(statistics.median(r) / floor_rps, 3),
            "cpu_us_per_request": round(statistics.median(cpu[name]), 1),
            "floor_cpu_share": round(floor_cpu / statistics.median(cpu[name]), 3),
            "rounds_requests_per_s": r,
            "rounds_cpu_us_per_request": [round(c, 1) for c in cpu[name]],
        }
        for name, r in runs.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="in-process rounds over all cases")
    parser.add_argument("--calls", type=int, default=2000, help="single-record calls per fast case per round")
    parser.add_argument("--seconds", type=int, default=8, help="length of each measured wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each measured wrk run")
    parser.add_argument("--http-rounds", type=int, default=3, help="wrk rounds over all servers; 0 skips HTTP")
    parser.add_argument("--out", type=Path, default=HERE / "estimators-results.json")
    args = parser.parse_args()
    if args.http_rounds and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    base = load_settings(ROOT / "params.yaml")
    with contextlib.chdir(ROOT):
        train, _ = frames.split(frames.load_training(base), base)
    models: dict[str, Any] = {}
    fit_seconds: dict[str, float] = {}
    for name, (estimator, params) in SIZES.items():
        settings = configured(base, estimator, params)
        started = time.perf_counter()
        pipeline = model.build_pipeline(settings).fit(*frames.features_and_target(train, settings))
        fit_seconds[name] = round(time.perf_counter() - started, 1)
        reference = PipelinePredictor(pipeline, settings.data.features)
        models[name] = (pipeline, loading.warmed(pipeline, reference, settings))
        print(f"{name}: fitted in {fit_seconds[name]} s, served by the {models[name][1].name} path", flush=True)
    inproc = in_process(models, base, args.rounds, args.calls)
    yardstick = inproc[f"{BASELINE}: fast path"]
    ratios = {
        case: {key: round(v[key] / yardstick[key], 2) for key in ("wall_p50_us", "wall_p99_us", "cpu_p99_us")}
        for case, v in inproc.items()
        if case.endswith("fast path")
    }
    over_http: dict[str, Any] = {}
    if args.http_rounds:
        record = loading.probe_records(base, rows=1, seed=7)[0]
        with tempfile.TemporaryDirectory(prefix="bench-estimators-") as tmp:
            bundles = {
                name: export(name, pipeline, configured(base, *SIZES[name]), Path(tmp) / str(i))
                for i, (name, (pipeline, _)) in enumerate(models.items())
            }
            over_http = http(bundles, record, args)
    report = {
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "fit_seconds": fit_seconds,
        "in_process": inproc,
        "fast_p99_vs_histgb": ratios,
        "http_32_connections": over_http,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("| case | wall p50 µs | wall p99 µs | CPU p50 µs | CPU p99 µs | p99 / HistGB fast (wall, CPU) |")
    print("|---|--:|--:|--:|--:|--:|")
    for case, v in inproc.items():
        ratio = ratios.get(case)
        versus = f"{ratio['wall_p99_us']}, {ratio['cpu_p99_us']}" if ratio else ""
        print(
            f"| {case} | {v['wall_p50_us']} | {v['wall_p99_us']} | {v['cpu_p50_us']} | {v['cpu_p99_us']} | {versus} |"
        )
    if not over_http:
        return 0
    print("\n| server | requests/s | vs floor | server CPU µs/request | floor's CPU / this |\n|---|--:|--:|--:|--:|")
    for name, v in over_http.items():
        print(
            f"| {name} | {v['requests_per_s']:,} | {v['vs_floor']:.2f} | {v['cpu_us_per_request']} |"
            f" {v['floor_cpu_share']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
