"""The alert rules under `promtool test rules`: the PrometheusRule the staging overlay renders (kustomize, as Argo
CD syncs it), its groups written to a plain rule file beside a copy of k8s/monitoring/tests/alerts.test.yml, which
gives every alert a firing and a quiet case. Needs Debian's prometheus package for promtool (`make prometheus`);
skips, saying so, without it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conveyor.manifests import rules
from tests.conftest import CONVEYOR, ROOT

pytestmark = pytest.mark.integration

PROMTOOL = shutil.which("promtool")
TESTS = ROOT / "k8s/monitoring/tests/alerts.test.yml"


def rendered_rule(environment: str) -> dict:
    out = subprocess.run(
        [str(Path(CONVEYOR).with_name("kubectl")), "kustomize", str(ROOT / "k8s/overlays" / environment)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (rule,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "PrometheusRule"]
    return rule


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.skip("no promtool binary: run `make prometheus` (scripts/ci/setup-prometheus.sh) for this test")
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=300)


def test_the_rendered_rules_pass_their_unit_tests(tmp_path: Path) -> None:
    rule = rendered_rule("staging")
    assert rule["metadata"]["namespace"] == "conveyor-staging"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules.alert_groups(rule), sort_keys=False))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    checked = promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", TESTS.name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


def test_a_broken_rule_fails_its_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: the latency alert's threshold raised tenfold leaves its firing case quiet."""
    rule = rendered_rule("staging")
    for group in rule["spec"]["groups"]:
        for item in group["rules"]:
            if item.get("alert") == "ConveyorPredictLatencyHigh":
                item["expr"] = item["expr"].replace("> 0.25", "> 2.5")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules.alert_groups(rule), sort_keys=False))
    tests = yaml.safe_load(TESTS.read_text())
    tests["tests"] = [t for t in tests["tests"] if t["name"].startswith("ConveyorPredictLatencyHigh ")]
    (tmp_path / TESTS.name).write_text(yaml.safe_dump(tests, sort_keys=False))
    tested = promtool("test", "rules", TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0
    assert "ConveyorPredictLatencyHigh fires" in tested.stdout + tested.stderr


def test_the_local_stack_rules_load(tmp_path: Path) -> None:
    """The plain rule file `make stack` and compose.yaml load is valid for Prometheus."""
    checked = promtool("check", "rules", str(ROOT / rules.LOCAL_RULES), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
