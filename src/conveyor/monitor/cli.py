"""`conveyor monitor`: a window of the prediction log judged against the training reference; `conveyor monitor
collect`: the HTTP collector that writes the log into a folder."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from conveyor.cli import Commands

API_ENV = "CONVEYOR_GITHUB_API"
PUSH_GATEWAY_ENV = "CONVEYOR_PUSH_GATEWAY"


def _monitor(args: argparse.Namespace) -> int:
    from conveyor.config import load_settings
    from conveyor.errors import ConveyorError
    from conveyor.monitor.run import Options, clear, run

    clear(args.reports)  # before anything can stop the run: no earlier verdict stays behind
    if args.log is None:
        raise ConveyorError("--log is missing; expected the prediction log's folder, e.g. --log predictions/.")
    settings = load_settings(args.params)
    options = Options(
        log=args.log,
        window=args.window,
        since=args.since,
        until=args.until,
        model=args.model,
        reports=args.reports,
        state=args.state,
        environment=args.environment,
        deployed_version=args.deployed_version,
        overlays=args.overlays,
        push_gateway=args.push_gateway or os.environ.get(PUSH_GATEWAY_ENV),
        github_api=args.github_api or os.environ.get(API_ENV),
        repository=args.repository,
        dry_run=args.dry_run,
    )
    outcome = run(settings, options)
    result = outcome.result
    judged = result.metrics["judged"]
    verdict = "not judged" if not judged else ("passed" if result.passed else "FAILED")
    window = result.metrics["window"]
    print(
        f"monitor: {verdict} ({window['since']} to {window['until']}, {result.metrics['records']['primary']} records)"
    )
    for failure in result.failures:
        print(f"  - {failure}", file=sys.stderr)
    for warning in result.warnings:
        print(f"  ! {warning}", file=sys.stderr)
    if outcome.dispatched is not None and not args.dry_run:
        print(f"sent the conveyor-retrain dispatch to {outcome.dispatched.url}")
    return 1 if judged and not result.passed and not args.exit_zero else 0


def _collect(args: argparse.Namespace) -> int:
    from conveyor.monitor.collect import serve

    def stop(signum: int, frame: object) -> NoReturn:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    serve(args.dir, args.host, args.port, args.max_body_bytes, args.max_file_bytes, args.max_total_bytes)
    return 0


def add_commands(commands: Commands) -> None:
    monitor = commands.add(
        "monitor", "judge a window of the prediction log: live drift, performance, fairness, retrain trigger", _monitor
    )
    monitor.add_argument("--log", type=Path, help="the prediction log's folder (required without a subcommand)")
    window = monitor.add_mutually_exclusive_group()
    window.add_argument("--window", help="how far back from --until (default 24h): 30m, 24h, 7d")
    window.add_argument("--since", help="the window's start, ISO 8601 (UTC when no zone)")
    monitor.add_argument("--until", help="the window's end, ISO 8601 (default: now)")
    monitor.add_argument(
        "--model", type=Path, help="the model bundle that scores the reference holdout (default: models/ when present)"
    )
    monitor.add_argument("--reports", type=Path, default=Path("reports"), help="where monitor.{json,html,prom} go")
    monitor.add_argument(
        "--state", type=Path, help="the consecutive-window state file (default: LOG/.monitor-state.json)"
    )
    monitor.add_argument("--environment", help="the environment whose deployed model version the metrics name")
    monitor.add_argument(
        "--deployed-version", help="that version (default: $CONVEYOR_DEPLOYED_VERSION, else its release file)"
    )
    monitor.add_argument("--overlays", type=Path, default=Path("k8s/overlays"), help="where the release files are")
    monitor.add_argument(
        "--push-gateway", help=f"a Pushgateway URL to PUT the metrics to (default: ${PUSH_GATEWAY_ENV})"
    )
    monitor.add_argument(
        "--github-api", help=f"GitHub's API URL (default: ${API_ENV}, else params.yaml monitor.github_api)"
    )
    monitor.add_argument("--repository", help="owner/name the retrain dispatch goes to (default: params.yaml)")
    monitor.add_argument("--dry-run", action="store_true", help="print the retrain dispatch instead of sending it")
    monitor.add_argument(
        "--exit-zero", action="store_true", help="exit 0 on a failed window (a CronJob's verdict is its metrics)"
    )
    actions = monitor.add_subparsers(dest="action", metavar="[collect]")
    collect = actions.add_parser(
        "collect",
        help="the HTTP collector: CloudEvents in, the prediction log's JSON Lines out",
        description="The HTTP collector: CloudEvents in, the prediction log's JSON Lines out.",
    )
    collect.set_defaults(func=_collect)
    collect.add_argument("--dir", type=Path, required=True, help="the folder the log is appended to")
    collect.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0 in a pod)")
    collect.add_argument("--port", type=int, default=8090)
    collect.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024, help="larger bodies get 413")
    collect.add_argument(
        "--max-file-bytes", type=int, default=64 * 1024 * 1024, help="a log file's size before the next"
    )
    collect.add_argument(
        "--max-total-bytes",
        type=int,
        default=4 * 1024**3,
        help="past this, the oldest files go (keep it under the volume)",
    )
