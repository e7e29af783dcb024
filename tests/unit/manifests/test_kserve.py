"""The KServe variant (k8s/kserve): it renders an InferenceService per environment from the same release file as
the Rollout, its pod matches the app (V2 health probes, port, user), the KServe and Gateway API schemas catch a
bad field, and checkov gets the predictor as the Pod KServe makes of it."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest

from conveyor.config import Settings
from conveyor.deploy import release
from conveyor.deploy.image import parse_image
from conveyor.manifests import check, contract, policy, validate
from conveyor.serve import routes
from tests.conftest import ROOT

NEW_IMAGE = "ghcr.io/conveyor-org/conveyor:8-1a2b3c4@sha256:" + "9f" * 32


def _schemas() -> Path:
    folder, _ = validate.schema_dir(ROOT)
    if folder is None:
        pytest.skip(f"no CRD schema folder: set {validate.SCHEMA_ENV}")
    return folder


def _service(source: validate.Source) -> dict[str, Any]:
    [found] = [d for d in source.docs if d["kind"] == "InferenceService"]
    return found


def _container(service: dict[str, Any]) -> dict[str, Any]:
    return service["spec"]["predictor"]["containers"][0]


@pytest.fixture(scope="module")
def rendered(settings: Settings) -> dict[str, validate.Source]:
    return check.render_kserve(ROOT, settings.deploy.environments)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """k8s/ in a scratch folder: the KServe overlays reach into k8s/overlays/<env>/release."""
    shutil.copytree(ROOT / "k8s", tmp_path / "k8s")
    return tmp_path


def test_each_environment_renders_one_inference_service_and_nothing_of_the_anchor(
    settings: Settings, rendered: dict[str, validate.Source]
) -> None:
    assert sorted(rendered) == sorted(settings.deploy.environments)
    for env, source in rendered.items():
        kinds = sorted(d["kind"] for d in source.docs)
        assert kinds == ["InferenceService", "NetworkPolicy", "ServiceAccount"], env
        service = _service(source)
        assert service["apiVersion"] == "serving.kserve.io/v1beta1"
        assert service["metadata"]["namespace"] == f"conveyor-{env}"
        assert service["metadata"]["labels"]["conveyor.dev/environment"] == env
        assert contract.kserve(source, settings, env, ROOT) == []


def test_the_predictor_is_probed_on_the_v2_health_routes_on_the_served_port(
    settings: Settings, rendered: dict[str, validate.Source]
) -> None:
    container = _container(_service(rendered["staging"]))
    assert container["name"] == "kserve-container"
    assert container["ports"][0] == {"name": "http1", "containerPort": settings.serve.port, "protocol": "TCP"}
    assert container["readinessProbe"]["httpGet"] == {"path": routes.V2_READY, "port": "http1"}
    assert container["livenessProbe"]["httpGet"] == {"path": routes.V2_LIVE, "port": "http1"}
    assert (routes.V2_LIVE, routes.V2_READY) == ("/v2/health/live", "/v2/health/ready")


def test_the_image_is_the_release_files_pinned_by_digest(
    settings: Settings, rendered: dict[str, validate.Source]
) -> None:
    for env, source in rendered.items():
        pinned = release.read(ROOT / release.release_path(env))
        service = _service(source)
        assert _container(service)["image"] == str(pinned.image)
        assert contract.DIGEST.search(_container(service)["image"])
        assert service["metadata"]["annotations"][release.MODEL_VERSION] == str(pinned.model_version)


def test_a_deploy_bump_moves_the_kserve_variant_too(settings: Settings, repo: Path) -> None:
    """The file `conveyor deploy bump` writes is the only thing changed; the InferenceService follows it."""
    path = repo / release.release_path("staging")
    bumped = release.Release(image=parse_image(NEW_IMAGE), gate_report="https://example.com/runs/1")
    path.write_text(release.render(bumped, mlflow_ui=settings.deploy.mlflow_ui, model_name=settings.model.name))
    after = check.render_kserve(repo, settings.deploy.environments)
    staging = _service(after["staging"])
    assert _container(staging)["image"] == NEW_IMAGE
    assert staging["metadata"]["annotations"][release.MODEL_VERSION] == "8"
    assert staging["metadata"]["annotations"][release.GATE_REPORT] == "https://example.com/runs/1"
    assert contract.kserve(after["staging"], settings, "staging", repo) == []
    assert _container(_service(after["production"]))["image"] != NEW_IMAGE  # production moves by promotion only


def _mutated(source: validate.Source, change: Any) -> validate.Source:
    docs = copy.deepcopy(source.docs)
    change(next(d for d in docs if d["kind"] == "InferenceService"))
    return validate.Source(source.name, docs)


CONTRACT_DRIFT: dict[str, tuple[Any, str]] = {
    "port name": (
        lambda s: _container(s)["ports"][0].update(name="http"),
        "first port is 'http':8080, expected 'http1':8080",
    ),
    "readiness on v1": (
        lambda s: _container(s)["readinessProbe"]["httpGet"].update(path=routes.READY),
        f"readinessProbe = {routes.READY}:http1, expected {routes.V2_READY} on port http1",
    ),
    "pod security context": (
        lambda s: s["spec"]["predictor"].update(securityContext={"runAsUser": 10001}),
        "the predictor sets a pod securityContext, which Knative refuses by default",
    ),
    "root": (
        lambda s: _container(s)["securityContext"].update(runAsUser=0),
        "the predictor does not run as non-root uid 10001",
    ),
    "unpinned image": (
        lambda s: _container(s).update(image="ghcr.io/conveyor-org/conveyor:latest"),
        "the predictor's image ghcr.io/conveyor-org/conveyor:latest is not pinned by digest",
    ),
    "canary off params": (
        lambda s: s["spec"]["predictor"].update(canaryTrafficPercent=30),
        "canaryTrafficPercent = 30, expected one of [50, 100] (100, or a weight of params.yaml deploy.canary.steps",
    ),
    "canary in raw mode": (
        lambda s: s["metadata"]["annotations"].update({contract.DEPLOYMENT_MODE: "RawDeployment"}),
        "KServe splits traffic only in Serverless or Knative mode",
    ),
    "no metrics": (
        lambda s: s["metadata"]["annotations"].pop("prometheus.kserve.io/path"),
        "annotation prometheus.kserve.io/path = None, expected '/metrics'",
    ),
    "model version": (
        lambda s: s["metadata"]["annotations"].update({release.MODEL_VERSION: "7"}),
        "InferenceService annotation conveyor.dev/model-version = '7', expected 0",
    ),
}


def test_a_canary_share_from_params_passes(settings: Settings, rendered: dict[str, validate.Source]) -> None:
    for env, share in (("staging", 50), ("production", 10), ("production", 25)):
        canary = _mutated(rendered[env], lambda s, n=share: s["spec"]["predictor"].update(canaryTrafficPercent=n))
        assert contract.kserve(canary, settings, env, ROOT) == [], (env, share)
    assert _service(rendered["production"])["spec"]["predictor"]["canaryTrafficPercent"] == 100  # promoted


@pytest.mark.parametrize("name", CONTRACT_DRIFT)
def test_each_drift_from_the_app_is_named(settings: Settings, rendered: dict[str, validate.Source], name: str) -> None:
    change, expected = CONTRACT_DRIFT[name]
    found = contract.kserve(_mutated(rendered["staging"], change), settings, "staging", ROOT)
    assert any(expected in f for f in found), found


def test_the_real_schema_refuses_a_bad_inference_service(rendered: dict[str, validate.Source]) -> None:
    folder = _schemas()
    staging = rendered["staging"]
    assert validate.validate_crds([staging], folder) == ([], 1)
    ten = _mutated(staging, lambda s: s["spec"]["predictor"].update(canaryTrafficPercent="ten"))
    found, _ = validate.validate_crds([ten], folder)
    assert found == [
        f"{staging.name}: InferenceService/conveyor: spec.predictor.canaryTrafficPercent: 'ten' is not of type 'integer'"
    ]
    unknown = _mutated(staging, lambda s: s["spec"]["predictor"].update(canaryPercent=10))
    found, _ = validate.validate_crds([unknown], folder)
    assert len(found) == 1 and "spec.predictor: Additional properties are not allowed ('canaryPercent'" in found[0]
    port = _mutated(staging, lambda s: _container(s)["ports"][0].update(containerPort="8080"))
    assert "containerPort: '8080' is not of type 'integer'" in validate.validate_crds([port], folder)[0][0]


def test_a_kind_without_a_schema_fails_rather_than_passes(rendered: dict[str, validate.Source]) -> None:
    folder = _schemas()
    future = _mutated(rendered["staging"], lambda s: s.update(apiVersion="serving.kserve.io/v2"))
    found, checked = validate.validate_crds([future], folder)
    assert checked == 0
    assert found == [f"{future.name}: InferenceService/conveyor: no schema serving.kserve.io/inferenceservice_v2.json."]


ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "conveyor", "namespace": "conveyor-staging"},
    "spec": {
        "parentRefs": [{"name": "gateway", "namespace": "gateway"}],
        "rules": [{"backendRefs": [{"name": "conveyor-predictor", "port": 80}]}],
    },
}


def test_gateway_api_objects_go_to_their_crd_schema() -> None:
    folder = _schemas()
    assert not validate.is_core(ROUTE)
    assert validate.is_core({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"})
    assert validate.validate_crds([validate.Source("route", [ROUTE])], folder) == ([], 1)
    bad = copy.deepcopy(ROUTE)
    bad["spec"]["rules"][0]["backendRefs"][0]["port"] = "eighty"
    found, _ = validate.validate_crds([validate.Source("route", [bad])], folder)
    assert found and all("HTTPRoute/conveyor: spec.rules.0.backendRefs.0.port" in f for f in found), found


def test_checkov_reads_the_predictor_as_the_pod_kserve_makes(rendered: dict[str, validate.Source]) -> None:
    files = policy.predictor_pods(rendered.values())
    assert sorted(files) == [
        "k8s-kserve-overlays-production-conveyor.predictor.yaml",
        "k8s-kserve-overlays-staging-conveyor.predictor.yaml",
    ]
    pod, *others = files["k8s-kserve-overlays-staging-conveyor.predictor.yaml"]
    assert [o["kind"] for o in others] == ["NetworkPolicy"]
    assert pod["kind"] == "Pod" and pod["metadata"]["namespace"] == "conveyor-staging"
    assert pod["metadata"]["labels"][policy.KSERVE_POD_LABEL] == "conveyor"  # what the NetworkPolicy selects
    assert others[0]["spec"]["podSelector"]["matchLabels"] == {policy.KSERVE_POD_LABEL: "conveyor"}
    assert not set(pod["spec"]) & policy.KSERVE_ONLY
    assert pod["spec"]["containers"] == _service(rendered["staging"])["spec"]["predictor"]["containers"]
    assert pod["metadata"]["annotations"]["checkov.io/skip1"].startswith("CKV_K8S_29=")


def test_an_application_may_sync_the_kserve_variant_once_the_project_allows_it(
    settings: Settings, rendered: dict[str, validate.Source]
) -> None:
    overlays, others = check.render_all(ROOT, settings.deploy.environments)
    docs = copy.deepcopy([d for s in others for d in s.docs])
    app = next(d for d in docs if d["kind"] == "Application" and d["metadata"]["name"] == "conveyor-staging")
    app["spec"]["source"]["path"] = "k8s/kserve/overlays/staging"
    trees = check.synced_trees(overlays, others, rendered)
    found = contract.argocd(docs, trees, settings)
    assert found == [
        "AppProject/conveyor does not allow InferenceService (serving.kserve.io), which k8s/kserve/overlays/staging "
        "renders for conveyor-staging."
    ]
    project = next(d for d in docs if d["kind"] == "AppProject")
    project["spec"]["namespaceResourceWhitelist"].append({"group": "serving.kserve.io", "kind": "InferenceService"})
    assert contract.argocd(docs, trees, settings) == []
