"""The monitoring manifests: the alert rules written from params.yaml and rendered into each overlay, their promtool
tests covering every alert both ways, runbook links into docs/monitoring.md, the dashboard's ConfigMap, the
shadow component, and the API's path to the prediction log's collector."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.config import Settings
from conveyor.manifests import check, rules, validate
from conveyor.manifests.rules import Target
from tests.conftest import ROOT

DOCS = ROOT / "docs/monitoring.md"
TESTS = ROOT / "k8s/monitoring/tests/alerts.test.yml"
DASHBOARD = ROOT / "k8s/monitoring/dashboard/conveyor.json"


def alerts(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for g in groups for r in g["rules"] if "alert" in r]


def overlay(environment: str) -> list[dict[str, Any]]:
    return validate.kustomize(ROOT / "k8s/overlays" / environment).docs


def test_the_checked_in_rules_are_what_params_gives(settings: Settings) -> None:
    assert rules.check(ROOT, settings) == []


def test_a_changed_slo_in_params_fails_the_check_until_the_rules_are_written(
    settings: Settings, tmp_path: Path
) -> None:
    shutil.copytree(ROOT / "k8s", tmp_path / "k8s")
    shutil.copytree(ROOT / "stack", tmp_path / "stack")
    canary = settings.deploy.canary.model_copy(update={"max_p95_latency_ms": 400})
    changed = settings.model_copy(update={"deploy": settings.deploy.model_copy(update={"canary": canary})})
    failures = rules.check(tmp_path, changed)
    assert len(failures) == 3 and all("run `conveyor manifests rules`" in f for f in failures)
    assert sorted(rules.write(tmp_path, changed)) == sorted(rules.expected(tmp_path, changed))
    assert rules.check(tmp_path, changed) == []
    (latency,) = [
        a for a in alerts(rules.groups(changed, Target("staging", "x"))) if a["alert"].endswith("LatencyHigh")
    ]
    assert latency["expr"].strip().endswith("> 0.4")


def test_burn_rates_are_the_sre_workbooks_for_30_days() -> None:
    windows = [*rules.PAGE_WINDOWS, *rules.TICKET_WINDOWS]
    assert [rules.burn_rate(share, "30d", long) for long, _, share in windows] == [14.4, 6, 3, 1]


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_each_overlay_renders_its_own_rules(settings: Settings, environment: str) -> None:
    docs = overlay(environment)
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    namespace = rule["metadata"]["namespace"]
    assert namespace == f"conveyor-{environment}"
    text = yaml.safe_dump(rule["spec"])
    assert set(re.findall(r'namespace=\\?"([^"\\]+)', text)) == {namespace}
    assert {a["labels"]["environment"] for a in alerts(rule["spec"]["groups"])} == {environment}
    assert rule["metadata"]["labels"]["conveyor.dev/environment"] == environment
    assert rules.in_overlay(docs, settings, environment, environment) == []
    other = "production" if environment == "staging" else "staging"  # another environment's rules do not do
    assert rules.in_overlay(docs, settings, other, environment) == [
        f"{environment}: the PrometheusRule is not {other}'s rules for namespace {namespace!r}."
    ]
    without = [d for d in docs if d["kind"] != "PrometheusRule"]
    assert "expected one PrometheusRule" in rules.in_overlay(without, settings, environment, environment)[0]


def test_every_alert_has_a_summary_description_and_a_runbook_section(settings: Settings) -> None:
    headings = {m.lower() for m in re.findall(r"^### (\S+)", DOCS.read_text(), flags=re.M)}
    found = alerts(rules.groups(settings, Target("staging", "conveyor-staging")))
    assert len(found) >= 9
    for alert in found:
        notes = alert["annotations"]
        assert notes["summary"] and notes["description"], alert["alert"]
        base, _, anchor = notes["runbook_url"].partition("#")
        assert base == rules.runbook_base(settings) and base.endswith("/docs/monitoring.md")
        assert anchor in headings, f"docs/monitoring.md has no section ### {alert['alert']}"


def test_every_alert_has_a_firing_and_a_quiet_promtool_case(settings: Settings) -> None:
    names = {a["alert"] for a in alerts(rules.groups(settings, Target("staging", "conveyor-staging")))}
    cases = [c for t in yaml.safe_load(TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert names - firing == set(), "alerts without a firing case"
    assert names - quiet == set(), "alerts without a quiet case"
    assert (firing | quiet) - names == set(), "cases for alerts that do not exist"


def test_the_dashboard_configmap_is_the_json_file_with_the_sidecar_label() -> None:
    (config,) = [d for d in overlay("production") if d["kind"] == "ConfigMap"]
    assert config["metadata"]["name"] == "conveyor-dashboard"
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["data"] == {"conveyor.json": DASHBOARD.read_text()}
    assert json.loads(config["data"]["conveyor.json"])["uid"] == "conveyor"
    assert not [d for d in overlay("staging") if d["kind"] == "ConfigMap"]  # one dashboard for all environments


def _api(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "conveyor"]
    return deployment["spec"]["template"]["spec"]


def test_the_shadow_component_mounts_a_bundle_and_points_serve_at_it() -> None:
    pod = _api(check.render_components(ROOT, "staging")["k8s/components/shadow"].docs)
    (api,) = pod["containers"]
    env = {e["name"]: e["value"] for e in api["env"]}
    mounts = {m["name"]: m for m in api["volumeMounts"]}
    (init,) = pod["initContainers"]
    assert env["SHADOW_MODEL_DIR"].startswith(mounts["shadow-model"]["mountPath"] + "/")
    assert mounts["shadow-model"]["readOnly"] is True
    assert "emptyDir" in {v["name"]: v for v in pod["volumes"]}["shadow-model"]
    assert init["volumeMounts"][0]["name"] == "shadow-model" and "@sha256:" in init["image"]
    assert "SHADOW_MODEL_DIR" not in str(_api(overlay("staging")))  # opt-in only


def test_the_api_sends_its_prediction_log_to_the_collector_and_may_reach_it() -> None:
    for environment in ("staging", "production"):
        docs = overlay(environment)
        (api,) = _api(docs)["containers"]
        url = {e["name"]: e.get("value") for e in api["env"]}["PREDICTION_LOG_URL"]
        services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
        collector = services[host]["spec"]["selector"]
        policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        peers = [
            (p["podSelector"]["matchLabels"], {q["port"] for q in rule["ports"]})
            for policy in policies
            if policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "conveyor"}
            for rule in policy["spec"].get("egress", [])
            for p in rule.get("to", [])
            if "podSelector" in p
        ]
        assert (collector, {int(port)}) in peers
