"""The alert and recording rules, written from params.yaml (`monitoring`, `deploy.canary.max_p95_latency_ms`,
the repository for the runbook links): one PrometheusRule per environment under k8s/monitoring/rules/<env>/,
which that environment's overlay includes, and a plain rule file for the local stack (stack/rules.yml).

Every selector names the environment's namespace, so that the rules of two environments in one Prometheus never
evaluate each other's series (each alert carries its `environment`). `conveyor manifests rules` writes the files;
`conveyor manifests check` fails when a checked-in file differs from what params.yaml gives."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from conveyor.config import Settings
from conveyor.deploy.release import OVERLAYS
from conveyor.errors import ConveyorError
from conveyor.serve import routes

RULES = Path("k8s/monitoring/rules")  # <env>/prometheusrule.yaml
LOCAL_RULES = Path("stack/rules.yml")  # `make stack` and compose.yaml load it
LOCAL = ("local", "conveyor-local")  # the local stack's environment and the namespace label its scrapes add
RUNBOOK = "docs/monitoring.md"
RULE_NAME = "conveyor"
HEADER = (
    "# Written by `conveyor manifests rules` from params.yaml (monitoring, deploy.canary): do not edit by hand;\n"
    "# `conveyor manifests check` fails when this file differs from what params.yaml gives. docs/monitoring.md.\n"
)
# The Google SRE workbook's multi-window, multi-burn-rate alerts: (long window, short window, share of the
# period's error budget the long window may burn). The burn rate is that share times period / long window:
# over 30 days 14.4, 6, 3 and 1.
PAGE_WINDOWS = (("1h", "5m", 0.02), ("6h", "30m", 0.05))
TICKET_WINDOWS = (("1d", "2h", 0.10), ("3d", "6h", 0.10))
ERROR_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Target:
    """Where the rules apply: the environment (an alert label) and the namespace its series carry."""

    environment: str
    namespace: str


def seconds(duration: str) -> int:
    match = re.fullmatch(r"([1-9][0-9]*)([smhd])", duration)
    if match is None:
        raise ConveyorError(f"{duration!r} is not a duration like 30m, 6h or 30d.")
    return int(match[1]) * SECONDS[match[2]]


def burn_rate(budget_share: float, period: str, window: str) -> float:
    return round(budget_share * seconds(period) / seconds(window), 4)


def _number(value: float) -> str:
    return f"{value:g}"


def runbook_base(settings: Settings) -> str:
    """docs/monitoring.md on the repository's tracked branch, from params.yaml argo.repository and revision."""
    repository = settings.argo.repository.removesuffix(".git").rstrip("/")
    return f"{repository}/blob/{settings.argo.revision}/{RUNBOOK}"


def anchor(alert: str) -> str:
    """The GitHub anchor of a `### <alert>` heading in docs/monitoring.md."""
    return alert.lower()


def groups(settings: Settings, target: Target) -> list[dict[str, Any]]:
    """The rule groups for one environment."""
    ns = f'namespace="{target.namespace}"'
    predict = f'{ns},route="{routes.PREDICT}"'
    requests = "conveyor_http_requests_total"
    monitoring = settings.monitoring
    budget = 1 - monitoring.availability_slo
    recording: list[dict[str, Any]] = []
    for window in ERROR_WINDOWS:
        total = f"sum by (namespace) (rate({requests}{{{predict}}}[{window}]))"
        errors = f'sum by (namespace) (rate({requests}{{{predict},status=~"5.."}}[{window}]))'
        recording.append(
            {
                "record": f"conveyor:predict_errors:ratio_rate{window}",
                "expr": f"({errors} or 0 * {total})\n/\n{total}\n",
            }
        )
    recording += [
        {
            "record": "conveyor:predict_requests:rate5m",
            "expr": f"sum by (namespace) (rate({requests}{{{predict}}}[5m]))\n",
        },
        {
            "record": "conveyor:predict_latency_seconds:p95_rate5m",
            "expr": "histogram_quantile(0.95, sum by (namespace, le) "
            f"(rate(conveyor_http_request_duration_seconds_bucket{{{predict}}}[5m])))\n",
        },
        {
            "record": "conveyor:prediction_log_dropped:ratio_rate15m",
            "expr": f"(sum by (namespace) (rate(conveyor_prediction_log_dropped_total{{{ns}}}[15m]))"
            f" or 0 * sum by (namespace) (rate(conveyor_prediction_log_records_total{{{ns}}}[15m])))\n/\n"
            f"sum by (namespace) (rate(conveyor_prediction_log_records_total{{{ns}}}[15m]))\n",
        },
    ]

    def burn(windows: tuple[tuple[str, str, float], ...]) -> str:
        terms = []
        for long, short, share in windows:
            rate = burn_rate(share, monitoring.slo_period, long)
            limit = f"({_number(rate)} * {_number(round(budget, 6))})"
            terms.append(
                f"(conveyor:predict_errors:ratio_rate{long}{{{ns}}} > {limit}\n"
                f" and conveyor:predict_errors:ratio_rate{short}{{{ns}}} > {limit})"
            )
        return "\nor\n".join(terms) + "\n"

    latency_s = settings.deploy.canary.max_p95_latency_ms / 1000
    deployed = f'conveyor_deployed_model_info{{environment="{target.environment}"}}'
    stale_s = seconds(monitoring.monitor_stale_after)
    slo = f"{monitoring.availability_slo * 100:g}%"
    alerts = [
        (
            "ConveyorAvailabilityBurnRateCritical",
            burn(PAGE_WINDOWS),
            "2m",
            "critical",
            f"{target.environment}: /v1/predict is burning its {slo} availability error budget fast",
            "The 5xx share of /v1/predict is {{ $value | humanizePercentage }} over the long window: at this rate "
            f"the {monitoring.slo_period} error budget is gone in days (SRE workbook: 2% of the budget in 1h, or 5% in 6h).",
        ),
        (
            "ConveyorAvailabilityBurnRateTicket",
            burn(TICKET_WINDOWS),
            "15m",
            "warning",
            f"{target.environment}: /v1/predict is slowly burning its {slo} availability error budget",
            "The 5xx share of /v1/predict is {{ $value | humanizePercentage }} over the long window: 10% of the "
            f"{monitoring.slo_period} error budget in 1 day, or in 3 days.",
        ),
        (
            "ConveyorPredictLatencyHigh",
            f"conveyor:predict_latency_seconds:p95_rate5m{{{ns}}} > {_number(latency_s)}\n",
            "10m",
            "warning",
            f"{target.environment}: /v1/predict p95 latency above the canary SLO of "
            f"{_number(settings.deploy.canary.max_p95_latency_ms)} ms",
            "p95 latency of /v1/predict over 5m is {{ $value | humanizeDuration }} "
            "(params.yaml deploy.canary.max_p95_latency_ms, the SLO a canary is held to).",
        ),
        (
            "ConveyorPredictionLogDropping",
            f"conveyor:prediction_log_dropped:ratio_rate15m{{{ns}}} > {_number(monitoring.max_log_drop_ratio)}\n",
            "10m",
            "warning",
            f"{target.environment}: the prediction log is dropping records",
            "{{ $value | humanizePercentage }} of the records sampled for the prediction log were dropped over 15m "
            "(queue full or sink error): the monitor sees less traffic than was served.",
        ),
        (
            "ConveyorLiveDrift",
            f"conveyor_monitor_drift_share{{{ns}}}\nand on (namespace) (conveyor_monitor_drift_detected{{{ns}}} == 1)\n",
            "0m",
            "warning",
            f"{target.environment}: live traffic has drifted from the training data",
            "conveyor monitor found drift in the last window: {{ $value | humanizePercentage }} of the features "
            "drifted (conveyor_monitor_feature_drifted names them).",
        ),
        (
            "ConveyorLiveAucBelowFloor",
            f'conveyor_monitor_roc_auc{{{ns},role="primary"}}\n'
            f"< on (namespace) group_left () conveyor_monitor_roc_auc_floor{{{ns}}}\n",
            "0m",
            "critical",
            f"{target.environment}: the served model's live ROC AUC is below the gate's floor",
            'ROC AUC on the labelled rows of the last window is {{ $value | printf "%.3f" }}, under the floor '
            "the deploy gate demands (conveyor_monitor_roc_auc_floor).",
        ),
        (
            "ConveyorPredictionScoreShift",
            f"abs(conveyor_monitor_score_shift{{{ns}}}) > {_number(monitoring.max_score_shift)}\n",
            "0m",
            "warning",
            f"{target.environment}: the live prediction scores have shifted",
            'The mean live prediction score is {{ $value | printf "%.3f" }} away from the training reference\'s '
            f"(params.yaml monitoring.max_score_shift = {_number(monitoring.max_score_shift)}).",
        ),
        (
            "ConveyorModelVersionMismatch",
            f"(count by (namespace, version) (conveyor_model_info{{{ns}}} == 1)\n"
            f" unless on (version) ({deployed} == 1))\nand on () (count({deployed} == 1) > 0)\n",
            monitoring.version_mismatch_for,
            "critical",
            f"{target.environment}: pods serve model version {{{{ $labels.version }}}}, not the one git deploys",
            "{{ $value }} pod(s) report model version {{ $labels.version }}, but the release git deploys to "
            f"{target.environment} names another (conveyor_deployed_model_info), for longer than a canary takes.",
        ),
        (
            "ConveyorMonitorStale",
            f"time() - max by (namespace) (conveyor_monitor_last_run_timestamp_seconds{{{ns}}}) > {stale_s}\n"
            f"or\nabsent(conveyor_monitor_last_run_timestamp_seconds{{{ns}}})\n",
            "10m",
            "warning",
            f"{target.environment}: conveyor monitor has not run for {monitoring.monitor_stale_after}",
            f"No conveyor monitor run has pushed its figures for {monitoring.monitor_stale_after} or more (or none "
            "ever did): the drift, live performance and deployed-version figures are stale.",
        ),
    ]
    base = runbook_base(settings)
    rules = []
    for name, expr, for_, severity, summary, description in alerts:
        rule: dict[str, Any] = {"alert": name, "expr": expr}
        if for_ != "0m":
            rule["for"] = for_
        rule["labels"] = {"severity": severity, "environment": target.environment}
        rule["annotations"] = {
            "summary": summary,
            "description": description,
            "runbook_url": f"{base}#{anchor(name)}",
        }
        rules.append(rule)
    return [{"name": "conveyor-recording", "rules": recording}, {"name": "conveyor-alerts", "rules": rules}]


def prometheus_rule(settings: Settings, target: Target) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": RULE_NAME,
            "labels": {"app.kubernetes.io/name": "conveyor", "app.kubernetes.io/component": "alert-rules"},
            "annotations": {"argocd.argoproj.io/sync-wave": "2"},
        },
        "spec": {"groups": groups(settings, target)},
    }


def overlay_namespace(root: Path, environment: str) -> str:
    kustomization = root / OVERLAYS / environment / "kustomization.yaml"
    namespace = (yaml.safe_load(kustomization.read_text()) or {}).get("namespace")
    if not namespace:
        raise ConveyorError(f"{kustomization} sets no namespace; the alert rules select their series by it.")
    return str(namespace)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL) as literal blocks, so the file reads as the queries do."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def _dump(doc: Any) -> str:
    return HEADER + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def expected(root: Path, settings: Settings) -> dict[Path, str]:
    """Every rule file, relative to the repository, and the text params.yaml gives it."""
    files = {}
    for environment in settings.deploy.environments:
        target = Target(environment, overlay_namespace(root, environment))
        files[RULES / environment / "prometheusrule.yaml"] = _dump(prometheus_rule(settings, target))
    files[LOCAL_RULES] = _dump({"groups": groups(settings, Target(*LOCAL))})
    return files


def write(root: Path, settings: Settings) -> list[Path]:
    """Write the rule files that differ; returns them."""
    written = []
    for path, text in expected(root, settings).items():
        target = root / path
        if not target.is_file() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            written.append(path)
    return written


def check(root: Path, settings: Settings) -> list[str]:
    """A failure for each rule file that is missing or differs from what params.yaml gives."""
    failures = []
    for path, text in expected(root, settings).items():
        target = root / path
        if not target.is_file():
            failures.append(f"{path} is missing: run `conveyor manifests rules`.")
        elif target.read_text() != text:
            failures.append(f"{path} differs from what params.yaml gives: run `conveyor manifests rules`.")
    return failures


def in_overlay(docs: list[dict[str, Any]], settings: Settings, environment: str, where: str) -> list[str]:
    """The environment's rendered overlay carries exactly its own rules, as params.yaml gives them."""
    found = [d for d in docs if d.get("kind") == "PrometheusRule"]
    if len(found) != 1:
        return [f"{where}: expected one PrometheusRule (k8s/monitoring/rules/{environment}), found {len(found)}."]
    namespace = found[0]["metadata"].get("namespace", "")
    if found[0].get("spec") != prometheus_rule(settings, Target(environment, namespace))["spec"]:
        return [f"{where}: the PrometheusRule is not {environment}'s rules for namespace {namespace!r}."]
    return []


def alert_groups(rule: dict[str, Any]) -> dict[str, Any]:
    """A rendered PrometheusRule's groups as a plain Prometheus rule file (what promtool and Prometheus read)."""
    if rule.get("kind") != "PrometheusRule":
        raise ConveyorError(f"expected a PrometheusRule, got {rule.get('kind')}.")
    return {"groups": rule["spec"]["groups"]}
