"""compose.yaml runs the local stack in containers with the very files `make stack` uses: every mounted file exists,
the Prometheus configuration and rules are stack/'s, the dashboard is the one the cluster's ConfigMap is made from,
and the ports in the commands are stack/stack.sh's (every service on the host's network, so loopback holds)."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import yaml

from conveyor.manifests import rules
from tests.conftest import ROOT

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
STACK_SH = (ROOT / "stack/stack.sh").read_text()
RUNTIME = {"./reports"}  # what the pipeline and `conveyor monitor` write (git-ignored), not configuration
PORTS = {name: int(port) for name, port in re.findall(r"^(\w+)_PORT=(\d+)$", STACK_SH, flags=re.M)}


def mounts(service: str) -> dict[str, Path]:
    """Container path -> the repository file a service bind-mounts there."""
    found = {}
    for volume in SERVICES[service].get("volumes") or []:
        source, target = volume.split(":")[:2]
        if source.startswith("./") and source not in RUNTIME:
            found[target] = ROOT / source
    return found


def test_the_stack_services_run_on_the_host_network() -> None:
    assert set(SERVICES) == {"mlflow", "api", "monitor-metrics", "prometheus", "grafana"}
    assert {s.get("network_mode") for s in SERVICES.values()} == {"host"}


def test_every_mounted_file_exists() -> None:
    for service in SERVICES:
        for target, source in mounts(service).items():
            assert source.exists(), f"{service} mounts {source.relative_to(ROOT)} at {target}, which does not exist"


def test_prometheus_gets_the_configuration_and_rules_make_stack_uses() -> None:
    mounted = mounts("prometheus")
    command = SERVICES["prometheus"]["command"]
    (config_flag,) = [c for c in command if c.startswith("--config.file=")]
    config_target = config_flag.split("=", 1)[1]
    assert mounted[config_target] == ROOT / "stack/prometheus.yml"
    assert '--config.file="$HERE/prometheus.yml"' in STACK_SH  # stack.sh sits in stack/
    config = yaml.safe_load(mounted[config_target].read_text())
    for rule_file in config["rule_files"]:  # resolved beside the configuration file, as Prometheus does
        target = str(PurePosixPath(config_target).parent / rule_file)
        assert mounted[target] == ROOT / rules.LOCAL_RULES
    assert f"--web.listen-address=127.0.0.1:{PORTS['PROMETHEUS']}" in command


def test_grafana_gets_the_dashboard_and_provisioning_of_the_repository() -> None:
    mounted = mounts("grafana")
    provider = yaml.safe_load((ROOT / "stack/grafana/dashboards.yaml").read_text())["providers"][0]
    folder = provider["options"]["path"]
    assert mounted[f"{folder}/conveyor.json"] == ROOT / "k8s/monitoring/dashboard/conveyor.json"
    sources = {p.relative_to(ROOT).as_posix() for p in mounted.values()}
    assert {"stack/grafana/datasources.yaml", "stack/grafana/dashboards.yaml"} <= sources
    datasource = yaml.safe_load((ROOT / "stack/grafana/datasources.yaml").read_text())["datasources"][0]
    assert datasource["url"] == f"http://127.0.0.1:{PORTS['PROMETHEUS']}"


def test_the_ports_are_stack_sh_s() -> None:
    config = yaml.safe_load((ROOT / "stack/prometheus.yml").read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in config["scrape_configs"]}
    assert targets == {"conveyor": f"127.0.0.1:{PORTS['API']}", "conveyor-monitor": f"127.0.0.1:{PORTS['MONITOR']}"}
    commands = {name: " ".join(map(str, s.get("command") or [])) for name, s in SERVICES.items()}
    assert f"--port {PORTS['API']}" in commands["api"]
    assert f"--port={PORTS['MLFLOW']}" in commands["mlflow"]
    assert str(PORTS["MONITOR"]) in commands["monitor-metrics"]


def test_images_are_built_here_or_pinned() -> None:
    for name, service in SERVICES.items():
        image = service.get("image")
        if image is None:
            assert service["build"]["context"] == ".", name
        else:
            assert re.search(r":v?\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?$", image), f"{name}: {image} is not pinned"
