"""The monitor's Prometheus metrics: text exposition format for a node-exporter textfile collector, or PUT to a
Pushgateway under job `conveyor-monitor`. The names are a contract: the alert rules and the dashboard use them.

A figure that was not judged (too few rows, no shadow) is left out, not written as 0: an absent series never
fires an alert, a zero would. `conveyor_monitor_passed` is present only for a judged window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest, push_to_gateway

from conveyor.checks.result import CheckResult
from conveyor.errors import ConveyorError
from conveyor.predictionlog import PRIMARY, SHADOW

JOB = "conveyor-monitor"
PREFIX = "conveyor_monitor_"


@dataclass(frozen=True)
class Deployed:
    """The model version git deploys to an environment (its release file)."""

    environment: str
    version: str


def registry(result: CheckResult, consecutive: int, timestamp: float, deployed: Deployed | None) -> CollectorRegistry:
    """Every gauge of one run."""
    m = result.metrics
    reg = CollectorRegistry()

    def gauge(name: str, help: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, help, labels, registry=reg)

    records = gauge(f"{PREFIX}window_records", "Predictions in the monitored window, by role.", ("role",))
    labelled = gauge(
        f"{PREFIX}labelled_records", "Predictions in the window with a fed-back label, by role.", ("role",)
    )
    for role in (PRIMARY, SHADOW):
        records.labels(role).set(m["records"][role])
        labelled.labels(role).set(m["labelled"][role])
    _drift(gauge, m["drift"])
    if m["score_shift"].get("judged"):
        gauge(f"{PREFIX}score_shift", "PSI of the primary's scores against the reference holdout's.").set(
            m["score_shift"]["psi"]
        )
    _performance(gauge, m["performance"])
    floor = result.thresholds["roc_auc"]["min"]
    gauge(f"{PREFIX}roc_auc_floor", "The live ROC AUC floor (the gate's gates.evaluate.roc_auc).").set(floor)
    challenger = m.get("challenger") or {}
    if challenger.get("judged"):
        gauge(f"{PREFIX}roc_auc_difference_low", "ROC AUC shadow minus primary: bootstrap interval, low.").set(
            challenger["low"]
        )
        gauge(f"{PREFIX}roc_auc_difference_high", "ROC AUC shadow minus primary: bootstrap interval, high.").set(
            challenger["high"]
        )
    _fairness(gauge, m["fairness"])
    if m["judged"]:
        gauge(f"{PREFIX}passed", "1 when the judged window passed, 0 when it failed.").set(int(result.passed))
    gauge(f"{PREFIX}consecutive_failed_windows", "Failed windows in a row (the retrain trigger's count).").set(
        consecutive
    )
    gauge(f"{PREFIX}last_run_timestamp_seconds", "When the monitor last ran, Unix time.").set(timestamp)
    if deployed is not None:
        info = gauge("conveyor_deployed_model_info", "The model version git deploys, =1.", ("environment", "version"))
        info.labels(deployed.environment, deployed.version).set(1)
    return reg


def _drift(gauge: Any, found: dict[str, Any]) -> None:
    if not found.get("judged"):
        return
    gauge(f"{PREFIX}drift_share", "Share of feature columns whose distribution drifted.").set(found["drifted_share"])
    gauge(f"{PREFIX}drift_detected", "1 when a drift threshold is broken.").set(int(found["detected"]))
    score = gauge(f"{PREFIX}feature_drift_score", "Each feature's drift score (its stat test's value).", ("feature",))
    drifted = gauge(
        f"{PREFIX}feature_drifted", "1 when the feature's score crosses its stat test's threshold.", ("feature",)
    )
    for name, column in found["columns"].items():
        score.labels(name).set(column["score"])
        drifted.labels(name).set(int(column["drifted"]))


def _performance(gauge: Any, found: dict[str, Any]) -> None:
    helps = {
        "roc_auc": "Live ROC AUC on the labelled rows, by role.",
        "precision": "Live precision on the labelled rows, by role.",
        "recall": "Live recall on the labelled rows, by role.",
        "calibration_error": "Live expected calibration error on the labelled rows, by role.",
    }
    for name, help in helps.items():
        series = gauge(f"{PREFIX}{name}", help, ("role",))
        for role, scores in found.items():
            if scores.get("judged") and scores.get(name) is not None:
                series.labels(role).set(scores[name])


def _fairness(gauge: Any, found: dict[str, Any]) -> None:
    if not found.get("judged"):
        return
    series = gauge(
        f"{PREFIX}fairness", "Live fairness disparity by sensitive feature and metric.", ("feature", "metric")
    )
    for feature, measured in found["features"].items():
        for metric in ("equalized_odds_difference", "demographic_parity_ratio"):
            if measured.get(metric) is not None:
                series.labels(feature, metric).set(measured[metric])


def text(reg: CollectorRegistry) -> str:
    return generate_latest(reg).decode()


def push(url: str, reg: CollectorRegistry) -> None:
    """PUT the metrics to a Pushgateway's /metrics/job/conveyor-monitor (replacing that group's last push)."""
    try:
        push_to_gateway(url, job=JOB, registry=reg, timeout=10)
    except OSError as exc:
        raise ConveyorError(
            f"--push-gateway = {url!r}: the push failed ({exc}); expected a reachable Pushgateway."
        ) from None
