"""The PostSync smoke test (k8s/base/smoke-job.yaml): run inside the API's own image after Argo CD synced.

It waits for readiness, asks which model is served, sends `deploy.smoke.requests` real predictions and fails
when any is refused or their p95 latency exceeds `deploy.smoke.max_p95_latency_ms`. Standard library only:
the serving image carries no test tools.

With `--load` it is the canary's traffic instead (the AnalysisTemplate's `load` Job): it replays sample records
at `--rate` predictions per second for `--duration` seconds, whatever they answer (the analysis judges the
answers from the app's metrics), and fails only when none got an HTTP answer at all.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from conveyor.config import Settings, load_settings
from conveyor.serve import routes


def example_record(settings: Settings) -> dict[str, Any]:
    """One valid record from params.yaml alone: each number at its minimum, each category's first value."""
    record: dict[str, Any] = {}
    for name, feature in settings.data.features.items():
        if feature.type == "category":
            record[name] = feature.values[0]
        elif feature.type == "int":
            record[name] = math.ceil(feature.min)
        else:
            record[name] = feature.min
    return record


def sample_records(settings: Settings, count: int) -> list[dict[str, Any]]:
    """`count` valid records from params.yaml alone, spread over each feature's range and categories."""
    records = []
    for i in range(count):
        record: dict[str, Any] = {}
        for j, (name, feature) in enumerate(settings.data.features.items()):
            if feature.type == "category":
                record[name] = feature.values[(i + j) % len(feature.values)]
            else:
                share = ((i * 7 + j * 3) % 11) / 10
                value = feature.min + share * (feature.max - feature.min)
                record[name] = min(math.ceil(value), math.floor(feature.max)) if feature.type == "int" else value
        records.append(record)
    return records


def _call(url: str, body: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--url = {url!r} is not an http(s) URL.")
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) checked above)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(base: str, timeout: float) -> str | None:
    """None once READY answers 200; otherwise the last thing it said."""
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = _call(base + routes.READY)
            if status == 200:
                return None
            last = f"HTTP {status} {body[:120]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(1.0)
    return f"{routes.READY} was not ready within {timeout:g} s ({last})"


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in (0, 100]."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def run(base: str, settings: Settings, ready_timeout: float = 60.0) -> list[str]:
    """Failure sentences; empty when the environment passed."""
    base = base.rstrip("/")
    not_ready = wait_ready(base, ready_timeout)
    if not_ready:
        return [not_ready]
    failures: list[str] = []
    status, body = _call(base + routes.MODEL)
    if status != 200:
        failures.append(f"{routes.MODEL} answered HTTP {status}, expected 200.")
    else:
        served = json.loads(body)
        print(
            f"serving model v{served.get('version')} (commit {str(served.get('git_commit'))[:7]}, "
            f"data {served.get('data_version')})"
        )
    payload = json.dumps(example_record(settings)).encode()
    latencies: list[float] = []
    for _ in range(settings.deploy.smoke.requests):
        start = time.perf_counter()
        status, body = _call(base + routes.PREDICT, payload)
        latencies.append((time.perf_counter() - start) * 1000)
        if status != 200:
            failures.append(f"{routes.PREDICT} answered HTTP {status} ({body[:160]!r}), expected 200.")
            break
        probability = json.loads(body).get("probability")
        if not isinstance(probability, float | int) or not 0 <= probability <= 1:
            failures.append(f"{routes.PREDICT} returned probability = {probability!r}, expected a number in [0, 1].")
            break
    limit = settings.deploy.smoke.max_p95_latency_ms
    if not failures:
        p95 = percentile(latencies, 95)
        print(f"{len(latencies)} predictions, p95 {p95:.1f} ms (limit {limit:g} ms)")
        if p95 > limit:
            failures.append(f"p95 latency of {routes.PREDICT} = {p95:.1f} ms > {limit:g} ms.")
    return failures


def load(base: str, settings: Settings, rate: float, duration: float, workers: int = 8) -> dict[str, int]:
    """Send predictions at `rate` per second for `duration` seconds; count the answers by status (0: no answer)."""
    base = base.rstrip("/")
    payloads = itertools.cycle([json.dumps(r).encode() for r in sample_records(settings, 50)])
    counts: dict[str, int] = {}
    lock = threading.Lock()
    start = time.monotonic()
    ticket = itertools.count()

    def worker() -> None:
        while True:
            with lock:
                n = next(ticket)
                body = next(payloads)
            due = start + n / rate
            if due >= start + duration:
                return
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                status = str(_call(base + routes.PREDICT, body)[0])
            except OSError:
                status = "0"
            with lock:
                counts[status] = counts.get(status, 0) + 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conveyor.serve.smoke", description=__doc__)
    parser.add_argument("--url", required=True, help="base URL of the service, e.g. http://conveyor-stable:8080")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    parser.add_argument("--load", action="store_true", help="send load instead of testing (the canary's traffic)")
    parser.add_argument("--rate", type=float, default=10.0, help="--load: predictions per second")
    parser.add_argument("--duration", type=float, default=60.0, help="--load: seconds")
    args = parser.parse_args(argv)
    if args.load:
        counts = load(args.url, load_settings(), args.rate, args.duration)
        answered = sum(n for status, n in counts.items() if status != "0")
        print(
            f"load: {sum(counts.values())} predictions in {args.duration:g} s, by status {dict(sorted(counts.items()))}"
        )
        return 0 if answered else 1
    failures = run(args.url, load_settings(), args.ready_timeout)
    for failure in failures:
        print(f"smoke: {failure}", file=sys.stderr)
    print("smoke: FAILED" if failures else "smoke: passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
