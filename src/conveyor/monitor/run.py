"""`conveyor monitor`: judge one window of the prediction log, write reports/monitor.{json,html,prom}, push the
metrics, count failed windows and send the retrain dispatch when they are confirmed.

The previous run's files are removed first, so a run that stops on bad input leaves no verdict claiming to be its
own. A dispatch that fails (no token, GitHub refuses) still leaves this window's verdict and metrics written and
pushed, keeps the count (the next run tries again) and then stops the run with its sentence (exit code 2)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from conveyor.checks.result import CheckResult
from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.monitor import assess, metrics, report, state, window
from conveyor.paths import MODELS, MONITOR_METRICS, MONITOR_REPORT, REPORTS

DEPLOYED_ENV = "CONVEYOR_DEPLOYED_VERSION"
RELEASE_FILE = Path("release/kustomization.yaml")  # under k8s/overlays/<env>, as conveyor.deploy.release writes it
MODEL_VERSION = "conveyor.dev/model-version"  # the Rollout annotation that names the release's model version


@dataclass(frozen=True)
class Options:
    log: Path
    window: str | None = None
    since: str | None = None
    until: str | None = None
    model: Path | None = None
    reports: Path = REPORTS
    state: Path | None = None
    environment: str | None = None
    deployed_version: str | None = None
    overlays: Path = Path("k8s/overlays")
    push_gateway: str | None = None
    github_api: str | None = None
    repository: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Outcome:
    result: CheckResult
    state: state.State
    dispatched: state.Request | None


def clear(reports: Path) -> None:
    """Remove the previous run's verdict, page and metrics."""
    for name in (f"{assess.CHECK}.json", MONITOR_REPORT.name, MONITOR_METRICS.name):
        (reports / name).unlink(missing_ok=True)


def deployed(options: Options) -> metrics.Deployed | None:
    """The model version git deploys to --environment: --deployed-version, $CONVEYOR_DEPLOYED_VERSION, else the
    environment's release file (read here: monitor does not import deploy)."""
    if options.environment is None:
        return None
    version = options.deployed_version or os.environ.get(DEPLOYED_ENV)
    if version:
        return metrics.Deployed(options.environment, version)
    path = options.overlays / options.environment / RELEASE_FILE
    try:
        component = yaml.safe_load(path.read_text())
        patch = yaml.safe_load(component["patches"][0]["patch"])
        version = str(patch["metadata"]["annotations"][MODEL_VERSION])
    except FileNotFoundError:
        raise ConveyorError(
            f"--environment = {options.environment!r}: {path} does not exist; expected that environment's release "
            f"file, or --deployed-version."
        ) from None
    except (yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
        raise ConveyorError(f"{path} names no {MODEL_VERSION} annotation ({type(exc).__name__}: {exc}).") from None
    return metrics.Deployed(options.environment, version)


def run(settings: Settings, options: Options, now: datetime | None = None) -> Outcome:
    clear(options.reports)
    release = deployed(options)
    since, until = window.bounds(options.window, options.since, options.until, now)
    live = window.read(options.log, settings, since, until)
    model = options.model if options.model is not None else (MODELS if (MODELS / "model.skops").is_file() else None)
    result = assess.assess(settings, live, assess.reference(settings, model))

    state_path = options.state or options.log / state.STATE_FILE
    version = str(live.primary["version"].iloc[-1]) if len(live.primary) else None  # the newest record's
    span = live.describe()
    current = state.advance(state.load(state_path), result.metrics["judged"], result.passed, version, span)
    sent, refused = None, None
    moment = now or datetime.now(UTC)
    cooldown = window.duration(settings.monitor.cooldown, "monitor.cooldown").total_seconds()
    if state.due(current, settings.monitor.failed_windows, cooldown, moment):
        sent = state.request(
            options.github_api or settings.monitor.github_api,
            options.repository or settings.monitor.repository,
            span,
            result.metrics["failing"],
            result.failures,
            version,
            current.consecutive_failed,
        )
        if options.dry_run:
            print(f"dry run: would send\n{sent.shown()}")
        else:
            try:
                state.send(sent)
                current = replace(current, consecutive_failed=0, dispatched_at=moment.isoformat())
            except ConveyorError as exc:  # the verdict and metrics are still written; the count stays, to retry
                refused = exc
    retrain = _retrain(sent, options, refused)
    result = replace(
        result,
        metrics={**result.metrics, "consecutive_failed_windows": current.consecutive_failed, "retrain": retrain},
        artifacts=[str(options.reports / MONITOR_REPORT.name), str(options.reports / MONITOR_METRICS.name)],
    )

    page = options.reports / MONITOR_REPORT.name
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(report.render(result))
    reg = metrics.registry(result, current.consecutive_failed, time.time(), release)
    (options.reports / MONITOR_METRICS.name).write_text(metrics.text(reg))
    result.write(options.reports)
    state.save(state_path, current)
    if options.push_gateway:
        metrics.push(options.push_gateway, reg)
    if refused is not None:
        raise refused
    return Outcome(result, current, sent)


def _retrain(sent: state.Request | None, options: Options, refused: ConveyorError | None) -> dict[str, Any]:
    """What became of the retrain dispatch this run: not due, printed (dry run), sent, or refused and why."""
    if sent is None:
        return {"due": False, "dispatched": False}
    found: dict[str, Any] = {"due": True, "dispatched": not options.dry_run and refused is None}
    found |= {"dry_run": options.dry_run, "url": sent.url, "body": sent.body}
    return found | ({"error": str(refused)} if refused else {})
