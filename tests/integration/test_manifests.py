"""`conveyor manifests check` on a copy of the repository's manifests: the real ones pass, and each kind of
drift between manifests, serving app, params.yaml, Dockerfile and Argo CD is reported by name."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conveyor.config import Settings, load_settings
from conveyor.errors import ConveyorError
from conveyor.manifests import check, contract, policy, validate
from conveyor.serve import routes
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))
COPIED = (
    "params.yaml", "Dockerfile", ".checkov.yaml", "k8s/base", "k8s/overlays", "k8s/components", "k8s/argo-workflows",
    "k8s/monitoring", "k8s/kserve", "stack", "argocd",
)  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The manifests, params.yaml and Dockerfile in a scratch folder, which is also the working directory."""
    root = tmp_path / "repo"
    root.mkdir()
    for item in COPIED:
        source = ROOT / item
        if not source.exists():
            continue
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / item)
    monkeypatch.chdir(root)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not unique in {path}"
    path.write_text(text.replace(old, new))


def problems(root: Path, settings: Settings | None = None) -> list[str]:
    """Every failure of the fast stages (all but checkov) on the folder."""
    settings = settings or load_settings(root / "params.yaml")
    rendered, others = check.render_all(root, settings.deploy.environments)
    first = settings.deploy.environments[0]
    components = check.render_components(root, first)
    kserve = check.render_kserve(root, settings.deploy.environments)
    sources = [*rendered.values(), *others, *components.values(), *kserve.values()]
    found = validate.validate_core(sources)
    folder, _ = validate.schema_dir(ROOT)
    if folder is not None:
        found += validate.validate_crds(sources, folder)[0]
    found += [f for env, src in rendered.items() for f in contract.app(src, settings, env, root)]
    found += [f for src in components.values() for f in contract.app(src, settings, first, root)]
    found += [f for env, src in kserve.items() for f in contract.kserve(src, settings, env, root)]
    trees = check.synced_trees(rendered, others, kserve)
    found += contract.argocd([d for s in others for d in s.docs], trees, settings)
    return found + contract.dockerfile(root / "Dockerfile", settings)


def test_the_repository_manifests_pass_the_fast_stages(repo: Path) -> None:
    assert problems(repo) == []


def test_the_kserve_variant_is_checked_beside_the_overlays(repo: Path) -> None:
    kserve = check.render_kserve(repo, ["staging", "production"])
    assert sorted(kserve) == ["production", "staging"]
    assert all(any(d["kind"] == "InferenceService" for d in s.docs) for s in kserve.values())
    shutil.rmtree(repo / "k8s/kserve")
    assert check.render_kserve(repo, ["staging", "production"]) == {}, "a fork may delete the variant"
    assert problems(repo) == []


def test_schemas_are_there_to_check_against() -> None:
    """CI exports CONVEYOR_SCHEMA_DIR; on a machine without it this says why the CRD stage was skipped."""
    folder, _ = validate.schema_dir(ROOT)
    if folder is None:
        pytest.skip(f"no CRD schema folder: set {validate.SCHEMA_ENV}")
    assert (folder / "argoproj.io" / "rollout_v1alpha1.json").is_file()
    assert (folder / "serving.kserve.io" / "inferenceservice_v1beta1.json").is_file()  # the KServe variant
    assert (folder / "gateway.networking.k8s.io" / "httproute_v1.json").is_file()


PRIVATE_REGISTRY = "k8s/components/private-registry"


def _service_account(docs: list[dict]) -> dict:  # type: ignore[type-arg]
    return next(d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "conveyor")


def test_the_private_registry_component_is_opt_in_and_checked_where_no_overlay_enables_it(repo: Path) -> None:
    """Off in the repository's overlays (a missing Secret would stop every pull); rendered on staging by the check."""
    rendered, _ = check.render_all(repo, ["staging", "production"])
    for env, source in rendered.items():
        assert "imagePullSecrets" not in _service_account(source.docs), env
    components = check.render_components(repo, "staging")
    assert PRIVATE_REGISTRY in components  # beside the other opt-in components (shadow)
    account = _service_account(components[PRIVATE_REGISTRY].docs)
    assert account["imagePullSecrets"] == [{"name": "conveyor-registry"}]
    assert account["metadata"]["namespace"] == "conveyor-staging"
    pods = [d for d in components[PRIVATE_REGISTRY].docs if d["kind"] in {"Deployment", "Job", "AnalysisTemplate"}]
    assert pods and all("serviceAccountName: conveyor\n" in yaml.safe_dump(d) for d in pods)  # every pod pulls with it

    edit(repo / PRIVATE_REGISTRY / "kustomization.yaml", "path: /imagePullSecrets", "path: /imagePullSecret")
    assert any("imagePullSecret" in p for p in problems(repo)), "a broken component fails the check"


def test_an_overlay_that_enables_the_private_registry_component_passes(repo: Path) -> None:
    edit(
        repo / "k8s/overlays/production/kustomization.yaml",
        "  - release\n",
        "  - release\n  - ../../components/private-registry\n",
    )
    assert problems(repo) == []
    rendered, _ = check.render_all(repo, ["staging", "production"])
    assert _service_account(rendered["production"].docs)["imagePullSecrets"] == [{"name": "conveyor-registry"}]
    assert "imagePullSecrets" not in _service_account(rendered["staging"].docs)


MUTATIONS: dict[str, tuple[str, str, str, str]] = {
    # name: (file, old, new, expected failure)
    "readiness path": (
        "k8s/base/deployment.yaml", f"path: {routes.READY}", "path: /ready",
        f"readinessProbe = /ready:http, expected {routes.READY}",
    ),
    "container port": (
        "k8s/base/deployment.yaml", "containerPort: 8080", "containerPort: 9090",
        "container port 'http' = 9090, expected params.yaml serve.port = 8080",
    ),
    "model dir": (
        "k8s/base/deployment.yaml", "value: /app/models", "value: /models",
        "env MODEL_DIR = '/models', expected '/app/models'",
    ),
    "slo drift": (
        "k8s/base/analysistemplate.yaml", 'value: "0.01"', 'value: "0.05"',
        "arg max-error-ratio = '0.05', expected params.yaml deploy.canary.max_error_ratio = 0.01",
    ),
    "series label": (
        "k8s/base/analysistemplate.yaml", 'status=~"5.."', 'code=~"5.."',
        "conveyor_http_requests_total has no label ['code'] in the app's metrics",
    ),
    "series name": (
        "k8s/base/analysistemplate.yaml", "count(conveyor_model_info{", "count(conveyor_model_version{",
        "the canary analysis queries conveyor_model_version, which the app does not expose",
    ),
    "metrics path": (
        "k8s/base/servicemonitor.yaml", f"path: {routes.METRICS}", "path: /prometheus",
        f"ServiceMonitor scrapes /prometheus on http, expected {routes.METRICS} on http",
    ),
    "unpinned smoke image": (
        "k8s/base/smoke-job.yaml", "image: conveyor:0-0000000@sha256:" + "0" * 64, "image: busybox:1.36",
        "Job/conveyor-smoke image busybox:1.36 is not pinned by digest",
    ),
    "strict core schema": (
        "k8s/base/pdb.yaml", "maxUnavailable: 1", "maxUnavailable: 1\n  maxUnavailabel: 2",
        "PodDisruptionBudget/conveyor: spec: Additional properties are not allowed ('maxUnavailabel'",
    ),
    "rollout schema": (
        "k8s/base/rollout.yaml", "progressDeadlineAbort: true", "progressDeadlineAbort: yes-please",
        "Rollout/conveyor: spec.progressDeadlineAbort: 'yes-please' is not of type 'boolean'",
    ),
    "kserve readiness path": (
        "k8s/kserve/base/inferenceservice.yaml", f"path: {routes.V2_READY}", f"path: {routes.READY}",
        f"readinessProbe = {routes.READY}:http1, expected {routes.V2_READY} on port http1",
    ),
    "kserve canary schema": (
        "k8s/kserve/overlays/staging/kustomization.yaml", "value: 100", "value: ten",
        "InferenceService/conveyor: spec.predictor.canaryTrafficPercent: 'ten' is not of type 'integer'",
    ),
    "kserve unknown predictor field": (
        "k8s/kserve/base/inferenceservice.yaml", "    enableServiceLinks: false\n",
        "    enableServiceLinks: false\n    canaryPercent: 10\n",
        "spec.predictor: Additional properties are not allowed ('canaryPercent' was unexpected)",
    ),
    "kserve anchor left behind": (
        "k8s/kserve/overlays/staging/kustomization.yaml", "  - ../../components/release-annotations\n", "",
        "renders Rollout/conveyor: the release anchor must not outlive the render",
    ),
    "application path": (
        "argocd/applications/production.yaml", "path: k8s/overlays/production", "path: k8s/overlays/prod",
        "Application/conveyor-production syncs 'k8s/overlays/prod', expected 'k8s/overlays/production'",
    ),
    "project kinds": (
        "argocd/project.yaml", "    - group: policy\n      kind: PodDisruptionBudget\n", "",
        "AppProject/conveyor does not allow PodDisruptionBudget (policy), which k8s/overlays/staging renders",
    ),
    "project destinations": (
        "argocd/project.yaml", "      namespace: conveyor-pipeline\n", "      namespace: pipelines\n",
        "Application/conveyor-pipeline deploys into 'conveyor-pipeline', which AppProject/conveyor does not allow",
    ),
    "dispatch payload": (
        "argocd/notifications.yaml", '"reason": "rollout aborted", ', "",
        "",  # still valid: the reason is optional
    ),
    "oncePer the refreshed revision": (
        "argocd/notifications.yaml",
        "      oncePer: app.status.operationState?.syncResult?.revision\n      send: [conveyor-dispatch-sync-failed]",
        "      oncePer: app.status.sync.revision\n      send: [conveyor-dispatch-sync-failed]",
        "trigger.conveyor-on-sync-failed has oncePer 'app.status.sync.revision'",
    ),
    "dispatch revision": (
        "argocd/notifications.yaml",
        '"revision": "{{with .app.status.operationState}}{{with .syncResult}}{{.revision}}{{end}}{{end}}", "reason": "sync failed"',
        '"reason": "sync failed"',
        "template.conveyor-dispatch-sync-failed is not a repository_dispatch carrying environment and revision",
    ),
    "image user": (
        "Dockerfile", "USER 10001:10001\n# What changes", "USER root\n# What changes",
        "the serving stage runs as USER root, expected 10001",
    ),
    "serve waits for its bundle": (
        "Dockerfile", '"0.0.0.0", "--wait-for-model"]', '"0.0.0.0"]',
        "the serving stage's CMD [\"conveyor\", \"serve\", \"--host\", \"0.0.0.0\"] lacks --wait-for-model",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", MUTATIONS)
def test_each_drift_is_reported(repo: Path, name: str) -> None:
    path, old, new, expected = MUTATIONS[name]
    if name in {"rollout schema", "kserve canary schema", "kserve unknown predictor field"} and (
        validate.schema_dir(ROOT)[0] is None
    ):
        pytest.skip(f"no CRD schema folder: set {validate.SCHEMA_ENV}")
    edit(repo / path, old, new)
    found = problems(repo)
    if not expected:
        assert found == []
    else:
        assert any(expected in f for f in found), found


def test_the_serving_port_is_read_from_params(repo: Path) -> None:
    params = repo / "params.yaml"
    edit(params, "  port: 8080\n", "  port: 9000\n")
    found = problems(repo)
    assert any("expected params.yaml serve.port = 9000" in f for f in found), found
    assert any("EXPOSEs ['8080'], expected serve.port 9000" in f for f in found), found


def test_a_missing_environment_overlay_fails_to_render(repo: Path) -> None:
    shutil.rmtree(repo / "k8s/overlays/production/release")
    with pytest.raises(ConveyorError, match=r"kubectl kustomize .*production failed"):
        check.render_all(repo, ["staging", "production"])


def test_a_kserve_overlay_that_drops_the_release_file_fails_to_render(repo: Path) -> None:
    """Without the release component nothing pins the image: kustomize stops on the anchor it copies from."""
    edit(repo / "k8s/kserve/overlays/production/kustomization.yaml", "  - ../../../overlays/production/release\n", "")
    with pytest.raises(
        ConveyorError, match=r"kserve/overlays/production failed: .*missing for replacement source Rollout"
    ):
        check.render_kserve(repo, ["staging", "production"])


def test_schema_folder_from_the_environment(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(validate.SCHEMA_ENV, str(repo / "nowhere"))
    with pytest.raises(ConveyorError, match=r"CONVEYOR_SCHEMA_DIR = .* is not a folder"):
        validate.schema_dir(repo)
    monkeypatch.delenv(validate.SCHEMA_ENV)
    assert validate.schema_dir(repo) == (None, ""), "no ../shared/schemas beside the scratch repo"


def test_without_schemas_the_crd_stage_says_it_skipped(repo: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(validate.SCHEMA_ENV, raising=False)
    assert check._crd_stage(repo, []) == []
    assert "CRD schemas: SKIPPED - no schema folder found; set CONVEYOR_SCHEMA_DIR" in capsys.readouterr().out


def test_a_checkov_skip_needs_a_reason(repo: Path) -> None:
    (repo / ".checkov.yaml").write_text("skip-check:\n  - CKV_K8S_8\n  # CKV_K8S_9 probes are set\n  - CKV_K8S_9\n")
    assert policy.unexplained_skips(repo) == [
        ".checkov.yaml skips CKV_K8S_8 without a comment line `# CKV_K8S_8 ...` giving the reason."
    ]


@pytest.mark.slow
def test_the_whole_check_fails_on_a_privileged_api_and_names_every_problem(repo: Path) -> None:
    """End to end with checkov: one contract drift and one policy breach, both named, exit 1. Without a
    Dockerfile and k8s/argo-workflows checkov runs once, not twice (their absence is a failure too)."""
    (repo / "Dockerfile").unlink()
    shutil.rmtree(repo / "k8s/argo-workflows", ignore_errors=True)
    edit(repo / "k8s/base/deployment.yaml", "privileged: false", "privileged: true")
    liveness = "livenessProbe:\n            httpGet:\n              path: "
    edit(repo / "k8s/base/deployment.yaml", liveness + routes.HEALTH, liveness + "/alive")
    env = os.environ | {policy.CHECKOV_ENV: str(ROOT / ".venv-checkov/bin/checkov")}
    if not Path(env[policy.CHECKOV_ENV]).is_file():
        pytest.fail("checkov is missing: `make manifests-check` creates .venv-checkov")
    done = subprocess.run([CONVEYOR, "manifests", "check"], cwd=repo, capture_output=True, text=True, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "livenessProbe = /alive:http, expected /healthz" in out
    assert re.search(r"CKV_K8S_16 .*privileged.* failed for .*Deployment\.conveyor-staging\.conveyor", out), out
    assert "Dockerfile does not exist" in out
    assert "kustomize: ok" in out and "manifests check: FAILED" in out


def _whole_check(root: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {policy.CHECKOV_ENV: str(ROOT / ".venv-checkov/bin/checkov")}
    if not Path(env[policy.CHECKOV_ENV]).is_file():
        pytest.fail("checkov is missing: `make manifests-check` creates .venv-checkov")
    return subprocess.run([CONVEYOR, "manifests", "check"], cwd=root, capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_the_whole_check_passes_with_the_kserve_variant_and_checkov_reads_its_predictor(repo: Path) -> None:
    """End to end with checkov: the repository passes, KServe overlays included; a privileged predictor fails
    checkov's pod check on the Pod KServe would make of it (checkov has no checks for InferenceService)."""
    done = _whole_check(repo)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 KServe overlays" in done.stdout and "serving.kserve.io" in done.stdout

    edit(repo / "k8s/kserve/base/inferenceservice.yaml", "privileged: false", "privileged: true")
    done = _whole_check(repo)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    for env in ("staging", "production"):
        assert re.search(
            rf"CKV_K8S_16 .*privileged.* failed for Pod\.conveyor-{env}\.conveyor .*kserve-overlays-{env}", out
        ), out
    assert "CRD schemas: ok" in out and "app contract: ok" in out  # only checkov knows privileged is wrong
