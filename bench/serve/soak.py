"""Soak: mixed valid and invalid predict traffic on loopback at N connections for S seconds, against a
`conveyor serve` this script starts. It passes when no answer is a 5xx (as the client saw it and as the server's
own metrics count it), every valid request gets a 200 with one prediction per record, every invalid request gets
its expected 4xx, and the server's resident memory grows by at most --max-growth from the end of the warm-up to
the end of the run.

With --prediction-log FRACTION the server also writes its prediction log (files in a temporary folder, at that
sampling, with small file and folder caps so that files rotate and are deleted during the run) and the mix gains
feedback requests; then it also passes only when the folder never exceeds its cap (sampled every second) and
every record handed to the log is written or counted as dropped.

From the repository root, with the bundle exported to models/:
    python bench/serve/soak.py [--model-dir models] [--seconds 60] [--connections 32] [--warmup 10]
        [--prediction-log 1.0 --log-file-bytes 1048576 --log-total-bytes 8388608 --log-queue-records 10000]
Prints a JSON report; exits 1 when a criterion fails. The client is plain asyncio (no dependencies)."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from conveyor.config import DEFAULT_PARAMS, PARAMS_ENV, Settings, load_settings
from conveyor.serve import loading, routes

BIN = Path(sys.executable).parent


@dataclass
class Case:
    name: str
    body: bytes
    status: int  # expected
    records: int = 0  # predictions expected in a 200; 0 for invalid requests
    single: bool = False
    path: str = routes.PREDICT
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0


def cases(settings: Settings) -> list[Case]:
    """The traffic mix, made from params.yaml: 12 valid requests (10 single, 2 batches) in every 22."""
    probe = loading.probe_records(settings, rows=64, seed=11)
    number = next(n for n, f in settings.data.features.items() if f.type != "category")
    category = settings.data.categorical[0]
    record = probe[0]
    unknown_status = 422 if settings.serve.unknown_category == "reject" else 200
    cap = settings.serve.max_batch_records
    nan_body = json.dumps({**record, number: 0}).replace(f'"{number}": 0', f'"{number}": NaN').encode()
    mix = [Case(f"valid single {i}", json.dumps(r).encode(), 200, 1, True) for i, r in enumerate(probe[:10])]
    mix += [Case("valid batch of 20", json.dumps(probe[:20]).encode(), 200, 20)]
    mix += [Case(f"valid batch of {cap}", json.dumps((probe * (cap // len(probe) + 1))[:cap]).encode(), 200, cap)]
    mix += [
        Case("wrong type", json.dumps({**record, number: "many"}).encode(), 422),
        Case("out of range", json.dumps({**record, number: -(10**9)}).encode(), 422),
        Case("NaN", nan_body, 422),
        Case(
            "unknown category",
            json.dumps({**record, category: "Atlantis"}).encode(),
            unknown_status,
            records=int(unknown_status == 200),
            single=True,
        ),
        Case("missing field", json.dumps({k: v for k, v in record.items() if k != number}).encode(), 422),
        Case("extra field", json.dumps({**record, "zodiac": "Leo"}).encode(), 422),
        Case("malformed JSON", b'{"' + number.encode() + b'": ', 400),
        Case("empty batch", b"[]", 422),
        Case("batch too large", json.dumps([record] * (cap + 1)).encode(), 422),
        Case("body too large", b" " * (settings.serve.max_body_bytes + 1), 413),
    ]
    return mix


def feedback_cases(settings: Settings) -> list[Case]:
    """Feedback for the prediction log: one item and a batch of 50 (202), and an unknown label (422)."""
    label = settings.data.positive_label
    items = [{"id": f"soak-{i}:{i}", "label": label} for i in range(50)]
    return [
        Case("feedback, one", json.dumps(items[0]).encode(), 202, path=routes.FEEDBACK),
        Case("feedback, batch of 50", json.dumps(items).encode(), 202, path=routes.FEEDBACK),
        Case("feedback, unknown label", json.dumps({"id": "x", "label": "?"}).encode(), 422, path=routes.FEEDBACK),
    ]


def _request(case: Case) -> bytes:
    body = case.body
    head = f"POST {case.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the server will close the connection)."""
    status = int((await reader.readuntil(b"\r\n")).split(b" ", 2)[1])
    length, closing = 0, False
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "connection" and value.strip().lower() == "close":
            closing = True
    return status, await reader.readexactly(length), closing


def _valid_answer(case: Case, body: bytes) -> bool:
    try:
        answer = json.loads(body)
        predictions = [answer] if case.single else answer["predictions"]
        return len(predictions) == case.records and all(0 <= p["probability"] <= 1 for p in predictions)
    except (ValueError, KeyError, TypeError):
        return False


async def _connection(port: int, mix: list[Case], offset: int, deadline: float, tally: dict[str, int]) -> None:
    order = itertools.islice(itertools.cycle(mix), offset, None)
    reader = writer = None
    while time.monotonic() < deadline:
        case = next(order)
        case.sent += 1
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_request(case))
            await writer.drain()
            status, body, closing = await _response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            case.transport_errors += 1
            tally["failed_valid" if case.status < 300 else "wrong_invalid"] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        case.statuses[status] = case.statuses.get(status, 0) + 1
        tally["five_xx"] += status >= 500
        if case.status == 200:
            tally["failed_valid"] += status != 200 or not _valid_answer(case, body)
        elif case.status == 202:
            tally["failed_valid"] += status != 202
        else:
            tally["wrong_invalid"] += status != case.status
        if closing:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE).group(1)) * 1024


def disk_bytes(folder: Path | None) -> int:
    """What the prediction log's files take in `folder` (0 without a log)."""
    if folder is None:
        return 0
    total = 0
    for path in folder.glob("*.jsonl"):
        with suppress(FileNotFoundError):  # deleted by the server meanwhile
            total += path.stat().st_size
    return total


async def _sample(pid: int, folder: Path | None, deadline: float, samples: list[tuple[float, int, int]]) -> None:
    """Every second: (seconds since the start, the server's RSS, the log folder's bytes)."""
    started = time.monotonic()
    while time.monotonic() < deadline:
        samples.append((time.monotonic() - started, rss_bytes(pid), disk_bytes(folder)))
        await asyncio.sleep(1.0)
    samples.append((time.monotonic() - started, rss_bytes(pid), disk_bytes(folder)))


async def drive(
    port: int, pid: int, mix: list[Case], seconds: float, connections: int, folder: Path | None
) -> dict[str, Any]:
    tally = {"five_xx": 0, "failed_valid": 0, "wrong_invalid": 0}
    samples: list[tuple[float, int, int]] = []
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(
        _sample(pid, folder, deadline, samples),
        *(_connection(port, mix, i * 5, deadline, tally) for i in range(connections)),
    )
    return {"elapsed": time.monotonic() - started, "samples": samples, **tally}


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def server_5xx(port: int) -> float:
    """5xx answers to predict and feedback requests as the server itself counted them (its Prometheus metrics).
    /readyz answers 503 by design until the model is loaded, so it is not counted here."""
    _, text = _get(f"http://127.0.0.1:{port}{routes.METRICS}")
    samples = re.findall(r"^conveyor_http_requests_total\{([^}]*)\} (\S+)$", text, re.MULTILINE)
    served = (f'route="{routes.PREDICT}"', f'route="{routes.FEEDBACK}"')
    return sum(
        float(value)
        for labels, value in samples
        if any(route in labels for route in served) and re.search(r'status="5\d\d"', labels)
    )


def log_counts(port: int) -> dict[str, float]:
    """The prediction log's counters, by series and label value: `records primary`, `dropped queue_full`, ..."""
    _, text = _get(f"http://127.0.0.1:{port}{routes.METRICS}")
    found = re.findall(
        r"^conveyor_(?:prediction_log_)?(records|written|dropped|feedback_records|deleted_files|deleted_bytes)_total"
        r'(?:\{\w+="(\w+)"\})? (\S+)$',
        text,
        re.MULTILINE,
    )
    return {f"{kind} {label}".strip(): float(value) for kind, label, value in found}


def settled(port: int, timeout: float = 30.0) -> dict[str, float]:
    """The log's counters once every record handed to it is written or dropped (or after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = log_counts(port)
        handed = counts["records primary"] + counts["feedback_records"]
        done = sum(v for k, v in counts.items() if k.startswith(("written", "dropped")))
        if done >= handed or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def logged_params(args: argparse.Namespace, work: Path) -> dict[str, str]:
    """The environment of a server writing its prediction log to `work`/log: a params.yaml copy with the
    sampling and caps of the command line."""
    params = yaml.safe_load(Path(os.environ.get(PARAMS_ENV) or DEFAULT_PARAMS).read_text())
    params["serve"]["prediction_log"].update(
        sample=args.prediction_log,
        file_max_bytes=args.log_file_bytes,
        total_max_bytes=args.log_total_bytes,
        queue_records=args.log_queue_records,
    )
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return {PARAMS_ENV: str(work / "params.yaml"), "PREDICTION_LOG_DIR": str(work / "log")}


def soak(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        return _soak(args, Path(tmp))


def _soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    settings = load_settings()
    logging_on = args.prediction_log is not None
    mix = cases(settings) + (feedback_cases(settings) if logging_on else [])
    folder = work / "log" if logging_on else None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = os.environ | {"MODEL_DIR": str(args.model_dir)} | (logged_params(args, work) if logging_on else {})
    log = args.server_log.open("w") if args.server_log else subprocess.DEVNULL
    server = subprocess.Popen(
        [str(BIN / "conveyor"), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while _get(f"http://127.0.0.1:{port}{routes.READY}")[0] != 200:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not become ready")
            time.sleep(0.5)
        rss_ready = rss_bytes(server.pid)
        run = asyncio.run(drive(port, server.pid, mix, args.seconds, args.connections, folder))
        health = _get(f"http://127.0.0.1:{port}{routes.HEALTH}")[0]
        counted_5xx = server_5xx(port)
        counts = settled(port) if logging_on else {}
        disk_end = disk_bytes(folder)
        if args.server_log:
            args.server_log.with_suffix(".metrics").write_text(_get(f"http://127.0.0.1:{port}{routes.METRICS}")[1])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    baseline = next(rss for t, rss, _ in run["samples"] if t >= min(args.warmup, args.seconds / 2))
    end = run["samples"][-1][1]
    disk_max = max([disk_end] + [disk for _, _, disk in run["samples"]])
    growth = (end - baseline) / baseline
    sent = sum(c.sent for c in mix)
    failures = []
    if run["five_xx"] or counted_5xx:
        failures.append(f"{run['five_xx']} 5xx answers seen, {counted_5xx:.0f} counted by the server")
    if run["failed_valid"]:
        failures.append(f"{run['failed_valid']} valid requests failed")
    if run["wrong_invalid"]:
        failures.append(f"{run['wrong_invalid']} invalid requests got another status than expected")
    if growth > args.max_growth:
        failures.append(f"RSS grew {growth:.1%} after the warm-up > {args.max_growth:.0%}")
    if health != 200:
        failures.append(f"/healthz answered {health} after the run")
    if logging_on:
        handed = counts["records primary"] + counts["feedback_records"]
        done = sum(v for k, v in counts.items() if k.startswith(("written", "dropped")))
        if done != handed:
            failures.append(f"{handed:.0f} records handed to the log, {done:.0f} written or dropped")
        if disk_max > args.log_total_bytes:
            failures.append(f"the log folder reached {disk_max} bytes > its cap {args.log_total_bytes}")
    mb = 1 / 2**20
    log_report = {
        "prediction_log": {
            "sample": args.prediction_log,
            "counters": counts,
            "disk_mb": {"max": round(disk_max * mb, 2), "end": round(disk_end * mb, 2)},
            "disk_cap_mb": round(args.log_total_bytes * mb, 2),
        }
    }
    return {
        "passed": not failures,
        "failures": failures,
        "seconds": round(run["elapsed"], 1),
        "connections": args.connections,
        "requests": sent,
        "requests_per_s": round(sent / run["elapsed"]),
        "valid_requests": sum(c.sent for c in mix if c.status < 300),
        "five_xx": run["five_xx"],
        "server_counted_5xx": counted_5xx,
        "failed_valid": run["failed_valid"],
        "wrong_invalid": run["wrong_invalid"],
        "rss_mb": {
            "ready": round(rss_ready * mb, 1),
            "after_warmup": round(baseline * mb, 1),
            "end": round(end * mb, 1),
            "max": round(max(r for _, r, _ in run["samples"]) * mb, 1),
        },
        "rss_growth_after_warmup": round(growth, 4),
        **(log_report if logging_on else {}),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cases": {c.name: {"sent": c.sent, "expected": c.status, "statuses": c.statuses} for c in mix},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=10, help="seconds of traffic before the RSS baseline")
    parser.add_argument("--max-growth", type=float, default=0.10, help="allowed RSS growth after the warm-up")
    parser.add_argument("--server-log", type=Path, default=None, help="write the server's output here")
    parser.add_argument("--prediction-log", type=float, default=None, help="write the prediction log, this sampled")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    parser.add_argument("--log-file-bytes", type=int, default=2**20, help="the log's file_max_bytes")
    parser.add_argument("--log-total-bytes", type=int, default=8 * 2**20, help="the log's total_max_bytes")
    parser.add_argument("--log-queue-records", type=int, default=10000, help="the log's queue_records")
    args = parser.parse_args()
    args.model_dir = args.model_dir.resolve()
    report = soak(args)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
