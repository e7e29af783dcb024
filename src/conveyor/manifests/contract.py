"""Cross-checks between the manifests and the code they run: ports, paths, env, series and SLO values come
from the serving app's constants and params.yaml, so a change on one side that the other misses fails here."""

from __future__ import annotations

import ast
import importlib.util
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from conveyor.config import PARAMS_ENV, Settings
from conveyor.deploy import release
from conveyor.errors import ConveyorError
from conveyor.manifests.validate import Doc, Source, describe
from conveyor.serve import routes
from conveyor.serve.cli import WAIT_FOR_MODEL

CONTAINER = "conveyor"
APP_UID = 10001
# Where the serving stage of the Dockerfile puts params.yaml and the model bundle (checked against it below).
IMAGE_PARAMS, IMAGE_MODELS = "/app/params.yaml", "/app/models"
TMP = "/tmp"  # noqa: S108 (a mount path in the pod, checked, never written here)
SMOKE_MODULE = "conveyor.serve.smoke"
SERIES = (
    "conveyor_http_requests_total",
    "conveyor_http_request_duration_seconds_bucket",
    "conveyor_model_info",
    "conveyor_prediction_score_sum",
)
SELECTOR = re.compile(r"\b(conveyor_\w+)(?:\{([^}]*)\})?")
PLACEHOLDER = re.compile(r"\{\{[^{}]*\}\}")  # {{args.x}}, filled in by Argo Rollouts
LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
# Labels Prometheus adds when it scrapes (the ServiceMonitor's target labels), not the app.
SCRAPE_LABELS = {"namespace", "pod", "service", "job", "instance", "endpoint", "rollouts_pod_template_hash"}
SLO_ARGS = {
    "max-error-ratio": "max_error_ratio",
    "max-p95-latency-ms": "max_p95_latency_ms",
    "max-score-shift": "max_score_shift",
    "min-requests": "min_requests",
}
JUDGED = ("traffic", "error-ratio", "latency-p95", "model-version")  # the metrics that abort a canary
WINDOW = re.compile(r"\[(\w+)\]")
PROJECT = "conveyor"
SUBSCRIBE = "notifications.argoproj.io/subscribe."
TRIGGERS = ("conveyor-on-sync-failed", "conveyor-on-rollout-aborted")
# The revision a sync operation applied; status.sync.revision moves on refresh, before anything is applied.
ONCE_PER = "app.status.operationState?.syncResult?.revision"
SYNCED_REVISION = "{{with .app.status.operationState}}{{with .syncResult}}{{.revision}}{{end}}{{end}}"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
APPLICATIONS = Path("argocd/applications")
# The KServe variant (k8s/kserve, docs/kserve.md). KServe's container name and annotations are spelled as in
# kserve/kserve pkg/constants/constants.go; Knative, which runs KServe's canary, allows only these port names
# (knative/serving pkg/apis/serving/k8s_validation.go, validPortNames; "h2c" is HTTP/2, which uvicorn is not).
KSERVE_OVERLAYS = Path("k8s/kserve/overlays")
KSERVE_CONTAINER = "kserve-container"
KSERVE_PORT_NAME = "http1"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
KNATIVE_MODES = ("Serverless", "Knative")  # KServe's canaryTrafficPercent works in this mode only
KSERVE_SCRAPING = {
    "serving.kserve.io/enable-prometheus-scraping": "true",
    "serving.kserve.io/enable-metric-aggregation": "true",
}
KSERVE_METRICS_PORT, KSERVE_METRICS_PATH = "prometheus.kserve.io/port", "prometheus.kserve.io/path"
MODEL_LINK = re.compile(r"/#/models/([^/\s'\"]+)")  # an MLflow UI link to a registered model


def constant(module: str, name: str) -> str:
    """A module-level string constant, read from the module's source without importing it (the serving app
    imports scikit-learn, seconds of start-up that a manifests check does not need)."""
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(str(spec.origin if spec else "")).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise ConveyorError(f"{module}.{name} is not defined; the manifests check reads the serving contract from it.")


def container_env() -> dict[str, str]:
    """The env the API container needs, names from the code that reads them."""
    return {PARAMS_ENV: IMAGE_PARAMS, constant("conveyor.serve.app", "MODEL_DIR_ENV"): IMAGE_MODELS}


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"].get("name") == name)]


def one(docs: list[Doc], kind: str, name: str) -> Doc | None:
    found = find(docs, kind, name)
    return found[0] if len(found) == 1 else None


def _dig(doc: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(doc, dict):
            doc = doc.get(key)
        elif isinstance(doc, list) and isinstance(key, int) and key < len(doc):
            doc = doc[key]
        else:
            return None
    return doc


def _containers(doc: Doc) -> list[dict[str, Any]]:  # a Deployment, Job or an AnalysisTemplate's job spec
    return list(_dig(doc, "spec", "template", "spec", "containers") or [])


def app(source: Source, settings: Settings, environment: str, root: Path) -> list[str]:
    """The API's pod, Services, scraping, analysis and smoke test against the serving app and params.yaml."""
    where = source.name
    deployment = one(source.docs, "Deployment", CONTAINER)
    if deployment is None:
        return [f"{where}: expected exactly one Deployment/{CONTAINER} (the Rollout's workloadRef)."]
    found = [c for c in _containers(deployment) if c.get("name") == CONTAINER]
    if not found:
        return [f"{where}: Deployment/{CONTAINER} has no container named {CONTAINER!r}."]
    failures = list(_pod(where, deployment, found[0], settings))
    failures += _release(where, source, deployment, found[0], environment, root)
    failures += _services(where, source, settings)
    failures += _analysis(where, source, settings, environment)
    failures += _smoke(where, source, settings)
    return failures


def _pod(where: str, deployment: Doc, container: dict[str, Any], settings: Settings) -> Iterator[str]:
    port = settings.serve.port
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
    if ports.get("http") != port:
        yield f"{where}: container port 'http' = {ports.get('http')}, expected params.yaml serve.port = {port}."
    for probe, path in (
        ("startupProbe", routes.HEALTH),
        ("livenessProbe", routes.HEALTH),
        ("readinessProbe", routes.READY),
    ):
        get = _dig(container, probe, "httpGet") or {}
        if get.get("path") != path or get.get("port") not in ("http", port):
            yield f"{where}: {probe} = {get.get('path')}:{get.get('port')}, expected {path} on port http ({port})."
    env = {e.get("name"): e.get("value") for e in container.get("env") or []}
    for name, value in container_env().items():
        if env.get(name) != value:
            yield f"{where}: env {name} = {env.get(name)!r}, expected {value!r}."
    pod = _dig(deployment, "spec", "template", "spec") or {}
    security = container.get("securityContext") or {}
    if (security.get("runAsUser") or _dig(pod, "securityContext", "runAsUser")) != APP_UID:
        yield f"{where}: the API does not run as uid {APP_UID}, the image's non-root user."
    if security.get("readOnlyRootFilesystem") is not True:
        yield f"{where}: readOnlyRootFilesystem is not true on the API container."
    mounts = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts") or []}
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    if "emptyDir" not in volumes.get(mounts.get(TMP), {}):
        yield f"{where}: /tmp is not an emptyDir volume; with a read-only root the app has nowhere to write."
    if pod.get("automountServiceAccountToken") is not False:
        yield f"{where}: the API pod mounts a service account token; set automountServiceAccountToken: false."


def _release(
    where: str, source: Source, deployment: Doc, container: dict[str, Any], environment: str, root: Path
) -> Iterator[str]:
    pinned = release.read(root / release.release_path(environment))
    for doc in source.docs:
        for c in _containers(doc):
            if not DIGEST.search(str(c.get("image", ""))):
                yield f"{where}: {doc['kind']}/{doc['metadata']['name']} image {c.get('image')} is not pinned by digest."
    if container.get("image") != str(pinned.image):
        yield f"{where}: the API runs {container.get('image')}, but the release file pins {pinned.image}."
    rollout = one(source.docs, "Rollout", release.ROLLOUT)
    version = _dig(rollout, "metadata", "annotations", release.MODEL_VERSION)
    if version != str(pinned.model_version):
        yield f"{where}: Rollout annotation {release.MODEL_VERSION} = {version!r}, expected {pinned.model_version!r}."
    if _dig(rollout, "spec", "workloadRef", "name") != deployment["metadata"]["name"]:
        yield f"{where}: the Rollout does not run Deployment/{deployment['metadata']['name']} by workloadRef."


def kserve(source: Source, settings: Settings, environment: str, root: Path) -> list[str]:
    """The KServe variant's InferenceService against the serving app, params.yaml and the environment's release
    file: the same pod as the Rollout's, probed on the Open Inference Protocol's health routes."""
    where = source.name
    found = find(source.docs, "InferenceService")
    if len(found) != 1 or found[0]["metadata"].get("name") != CONTAINER:
        return [f"{where}: expected exactly one InferenceService/{CONTAINER}, found {[describe(d) for d in found]}."]
    service = found[0]
    failures = [
        f"{where}: renders {describe(d)}: the release anchor must not outlive the render (release-annotations)."
        for d in find(source.docs, "Rollout")
    ]
    predictor = _dig(service, "spec", "predictor") or {}
    containers = [c for c in predictor.get("containers") or [] if c.get("name") == KSERVE_CONTAINER]
    if not containers:
        return [*failures, f"{where}: the predictor has no container named {KSERVE_CONTAINER!r} (KServe's name)."]
    container = containers[0]
    failures += _kserve_pod(where, predictor, container, settings)
    failures += _kserve_release(where, service, container, environment, root)
    failures += _kserve_canary(where, service, settings, environment)
    return failures


def _kserve_pod(where: str, predictor: dict[str, Any], container: dict[str, Any], settings: Settings) -> Iterator[str]:
    port = settings.serve.port
    ports = container.get("ports") or []
    first = ports[0] if ports else {}
    if (first.get("name"), first.get("containerPort")) != (KSERVE_PORT_NAME, port):
        yield (
            f"{where}: the predictor's first port is {first.get('name')!r}:{first.get('containerPort')}, expected "
            f"{KSERVE_PORT_NAME!r}:{port} (params.yaml serve.port; Knative allows only 'http1' or 'h2c')."
        )
    for probe, path in (
        ("startupProbe", routes.V2_LIVE),
        ("livenessProbe", routes.V2_LIVE),
        ("readinessProbe", routes.V2_READY),
    ):
        if probe == "startupProbe" and probe not in container:
            continue
        get = _dig(container, probe, "httpGet") or {}
        if get.get("path") != path or get.get("port") not in (KSERVE_PORT_NAME, port):
            yield f"{where}: {probe} = {get.get('path')}:{get.get('port')}, expected {path} on port {KSERVE_PORT_NAME}."
    env = {e.get("name"): e.get("value") for e in container.get("env") or []}
    for name, value in container_env().items():
        if env.get(name) != value:
            yield f"{where}: env {name} = {env.get(name)!r}, expected {value!r}."
    if predictor.get("securityContext"):
        yield (
            f"{where}: the predictor sets a pod securityContext, which Knative refuses by default "
            "(kubernetes.podspec-securitycontext); set it on the container."
        )
    security = container.get("securityContext") or {}
    if security.get("runAsUser") != APP_UID or security.get("runAsNonRoot") is not True:
        yield f"{where}: the predictor does not run as non-root uid {APP_UID}, the image's user."
    if security.get("readOnlyRootFilesystem") is not True:
        yield f"{where}: readOnlyRootFilesystem is not true on the predictor."
    mounts = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts") or []}
    volumes = {v.get("name"): v for v in predictor.get("volumes") or []}
    if "emptyDir" not in volumes.get(mounts.get(TMP), {}):
        yield f"{where}: /tmp is not an emptyDir volume; with a read-only root the app has nowhere to write."
    if predictor.get("automountServiceAccountToken") is not False:
        yield f"{where}: the predictor mounts a service account token; set automountServiceAccountToken: false."
    if not DIGEST.search(str(container.get("image", ""))):
        yield f"{where}: the predictor's image {container.get('image')} is not pinned by digest."


def _kserve_release(where: str, service: Doc, container: dict[str, Any], environment: str, root: Path) -> Iterator[str]:
    pinned = release.read(root / release.release_path(environment))
    if container.get("image") != str(pinned.image):
        yield f"{where}: the predictor runs {container.get('image')}, but the release file pins {pinned.image}."
    version = _dig(service, "metadata", "annotations", release.MODEL_VERSION)
    if version != str(pinned.model_version):
        yield (
            f"{where}: InferenceService annotation {release.MODEL_VERSION} = {version!r}, "
            f"expected {pinned.model_version!r}."
        )


def _kserve_canary(where: str, service: Doc, settings: Settings, environment: str) -> Iterator[str]:
    annotations = _dig(service, "metadata", "annotations") or {}
    percent = _dig(service, "spec", "predictor", "canaryTrafficPercent")
    if percent is not None and annotations.get(DEPLOYMENT_MODE) not in KNATIVE_MODES:
        yield (
            f"{where}: canaryTrafficPercent is set but {DEPLOYMENT_MODE} = {annotations.get(DEPLOYMENT_MODE)!r}; "
            f"KServe splits traffic only in {' or '.join(KNATIVE_MODES)} mode."
        )
    # 100 is the promoted state; a canary share is one of the environment's params.yaml step weights.
    allowed = sorted({100, *(step.weight for step in settings.deploy.canary.steps.get(environment) or [])})
    if percent is not None and percent not in allowed:
        yield (
            f"{where}: canaryTrafficPercent = {percent!r}, expected one of {allowed} "
            f"(100, or a weight of params.yaml deploy.canary.steps.{environment})."
        )
    expected = {**KSERVE_SCRAPING, KSERVE_METRICS_PORT: str(settings.serve.port), KSERVE_METRICS_PATH: routes.METRICS}
    for key, value in expected.items():
        if annotations.get(key) != value:
            yield f"{where}: annotation {key} = {annotations.get(key)!r}, expected {value!r}: Prometheus would miss the app."


def _services(where: str, source: Source, settings: Settings) -> Iterator[str]:
    for service in find(source.docs, "Service"):
        for port in _dig(service, "spec", "ports") or []:
            if port.get("targetPort") not in ("http", settings.serve.port):
                name = service["metadata"]["name"]
                yield f"{where}: Service/{name} targets port {port.get('targetPort')}, expected http."
    for monitor in find(source.docs, "ServiceMonitor"):
        for endpoint in _dig(monitor, "spec", "endpoints") or []:
            if endpoint.get("path") != routes.METRICS or endpoint.get("port") != "http":
                yield (
                    f"{where}: ServiceMonitor scrapes {endpoint.get('path')} on {endpoint.get('port')}, "
                    f"expected {routes.METRICS} on http."
                )


def _analysis(where: str, source: Source, settings: Settings, environment: str) -> Iterator[str]:
    templates = find(source.docs, "AnalysisTemplate")
    if not templates:
        yield f"{where}: no AnalysisTemplate: nothing would abort a bad canary."
        return
    args = {a["name"]: a.get("value") for t in templates for a in _dig(t, "spec", "args") or []}
    for arg, field in SLO_ARGS.items():
        expected = getattr(settings.deploy.canary, field)
        value = args.get(arg)
        if value is None or float(value) != float(expected):
            yield f"{where}: AnalysisTemplate arg {arg} = {value!r}, expected params.yaml deploy.canary.{field} = {expected}."
    queries = "\n".join(
        str(_dig(m, "provider", "prometheus", "query")) for t in templates for m in _dig(t, "spec", "metrics") or []
    )
    for series in SERIES:
        if series not in queries:
            yield f"{where}: the canary analysis never queries {series}."
    exposed = exposed_series()
    for name, labels in SELECTOR.findall(PLACEHOLDER.sub("arg", queries)):
        used = {label for label in LABEL.findall(labels)} - SCRAPE_LABELS
        if name not in exposed:
            yield f"{where}: the canary analysis queries {name}, which the app does not expose."
        elif used - exposed[name]:
            yield f"{where}: {name} has no label {sorted(used - exposed[name])} in the app's metrics."
    if f'route="{routes.PREDICT}"' not in queries:
        yield f'{where}: the latency query does not select route="{routes.PREDICT}".'
    yield from _canary_figures(where, source, templates, settings, environment)


def _canary_figures(
    where: str, source: Source, templates: list[Doc], settings: Settings, environment: str
) -> Iterator[str]:
    """Windows, timings, the load Job and the Rollout's steps against params.yaml deploy.canary."""
    canary = settings.deploy.canary
    metrics = {m["name"]: m for t in templates for m in _dig(t, "spec", "metrics") or []}
    expected = {"initialDelay": canary.initial_delay, "interval": canary.interval, "failureLimit": canary.failure_limit}
    for name in JUDGED:
        metric = metrics.get(name)
        if metric is None:
            yield f"{where}: the canary analysis has no metric {name}."
            continue
        for key, value in expected.items():
            if metric.get(key) != value:
                yield f"{where}: metric {name} {key} = {metric.get(key)!r}, expected params.yaml deploy.canary {value!r}."
        windows = set(WINDOW.findall(str(_dig(metric, "provider", "prometheus", "query"))))
        if windows and windows != {canary.window}:  # model-version reads an instant vector
            yield f"{where}: metric {name} queries windows {sorted(windows)}, expected [{canary.window}]."
    job = _dig(metrics.get("load") or {}, "provider", "job")
    if not job:
        yield f"{where}: the canary analysis runs no load Job: an idle canary would be judged on nothing."
    else:
        command = [str(a) for c in _containers(job) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
        flags = dict(itertools.pairwise(command))
        wanted = {"--rate": canary.load.rate, "--duration": canary.load.duration_s}
        if SMOKE_MODULE not in command or "--load" not in command:
            yield f"{where}: the load Job does not run python -m {SMOKE_MODULE} --load."
        for flag, value in wanted.items():
            if flag not in flags or float(flags[flag]) != float(value):
                yield f"{where}: the load Job's {flag} = {flags.get(flag)!r}, expected params.yaml {value}."
    steps = canary.steps.get(environment)
    rollout = one(source.docs, "Rollout", CONTAINER)
    if steps is not None and rollout is not None:
        found = _dig(rollout, "spec", "strategy", "canary", "steps") or []
        wanted_steps = [s for step in steps for s in ({"setWeight": step.weight}, {"pause": {"duration": step.pause}})]
        if found != wanted_steps:
            yield f"{where}: the Rollout's canary steps {found} differ from params.yaml deploy.canary.steps."


def exposed_series() -> dict[str, set[str]]:
    """Every sample name the serving app exposes, with its label names: the app's own Metrics, after one
    request, one score, a loaded model and a loaded shadow, rendered and parsed as Prometheus would scrape them."""
    from prometheus_client.parser import text_string_to_metric_families

    from conveyor.serve.metrics import Metrics

    metrics = Metrics(routes.ALL)
    metrics.observe_request(routes.PREDICT, "POST", 500, 0.01)
    metrics.observe_scores([0.5])
    metrics.model_loaded({"version": "1", "git_commit": "0" * 40, "data_version": "0"})
    metrics.shadow_loaded("2")
    metrics.observe_shadow_scores([0.5])
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def _smoke(where: str, source: Source, settings: Settings) -> Iterator[str]:
    jobs = [
        j
        for j in find(source.docs, "Job")
        if _dig(j, "metadata", "annotations", "argocd.argoproj.io/hook") == "PostSync"
    ]
    if not jobs:
        yield f"{where}: no PostSync smoke Job."
        return
    for job in jobs:
        for container in _containers(job):
            command = [*(container.get("command") or []), *(container.get("args") or [])]
            if SMOKE_MODULE not in command or importlib.util.find_spec(SMOKE_MODULE) is None:
                yield f"{where}: Job/{job['metadata']['name']} does not run python -m {SMOKE_MODULE}."
            urls = [a for a in command if a.startswith("http://")]
            if not urls or not urls[0].rstrip("/").endswith(f":{settings.serve.port}"):
                yield f"{where}: Job/{job['metadata']['name']} URL {urls} is not on port {settings.serve.port}."


def argocd(docs: list[Doc], trees: dict[str, list[Doc]], settings: Settings) -> list[str]:
    """Applications, project and notifications against what each synced path renders and params.yaml.

    `trees` maps a repository path (k8s/overlays/<env>, k8s/argo-workflows) to the objects it renders.
    """
    failures: list[str] = []
    project = one(docs, "AppProject", PROJECT)
    if project is None:
        return [f"argocd/: expected one AppProject named {PROJECT}."]
    for environment in settings.deploy.environments:
        name = f"conveyor-{environment}"
        application = one(docs, "Application", name)
        if application is None:
            failures.append(f"argocd/: no Application {name} for environment {environment}.")
        else:
            failures += _environment(application, environment, settings)
    for application in find(docs, "Application"):
        if _dig(application, "spec", "project") == PROJECT:
            failures += _fenced(application, project["spec"], trees)
    return sorted(set(failures)) + _notifications(docs)


def _fenced(application: Doc, project: Doc, trees: dict[str, list[Doc]]) -> Iterator[str]:
    """An Application of the project may read only its repository, deploy only into its namespaces, and only
    the kinds it allows: otherwise Argo CD refuses the sync in the cluster, long after the commit."""
    name = application["metadata"]["name"]
    spec = application["spec"]
    if _dig(spec, "source", "repoURL") not in (project.get("sourceRepos") or []):
        yield f"Application/{name} reads {_dig(spec, 'source', 'repoURL')}, which AppProject/{PROJECT} does not allow."
    target = _dig(spec, "destination", "namespace")
    if target not in {d.get("namespace") for d in project.get("destinations") or []}:
        yield f"Application/{name} deploys into {target!r}, which AppProject/{PROJECT} does not allow."
    path = _dig(spec, "source", "path")
    if path not in trees:
        return
    allowed = {(k.get("group", ""), k.get("kind")) for k in project.get("namespaceResourceWhitelist") or []}
    for doc in trees[path]:
        group, kind = doc["apiVersion"].rpartition("/")[0], doc["kind"]
        if (group, kind) not in allowed:
            yield f"AppProject/{PROJECT} does not allow {kind} ({group or 'core'}), which {path} renders for {name}."
        namespace = doc["metadata"].get("namespace")
        if namespace not in (None, target):
            yield f"{path} renders {kind}/{doc['metadata']['name']} into {namespace!r}, but {name} deploys into {target!r}."


def _environment(application: Doc, environment: str, settings: Settings) -> Iterator[str]:
    name = application["metadata"]["name"]
    spec = application["spec"]
    expected_path = str(release.OVERLAYS / environment)
    alternative = str(KSERVE_OVERLAYS / environment)  # the KServe variant reads the same release file
    if _dig(spec, "source", "path") not in (expected_path, alternative):
        yield f"Application/{name} syncs {_dig(spec, 'source', 'path')!r}, expected {expected_path!r}."
    if _dig(spec, "project") != PROJECT:
        yield f"Application/{name} is not in AppProject/{PROJECT}."
    automated = _dig(spec, "syncPolicy", "automated") or {}
    if not (automated.get("prune") and automated.get("selfHeal") and _dig(spec, "syncPolicy", "retry")):
        yield f"Application/{name} needs automated sync with prune, selfHeal and retry."
    labels = application["metadata"].get("labels") or {}
    if labels.get("conveyor.dev/environment") != environment:
        yield f"Application/{name} label conveyor.dev/environment must be {environment!r}: the rollback reads it."
    model = _dig(application, "metadata", "annotations", "link.argocd.argoproj.io/mlflow-model") or ""
    expected = f"{settings.deploy.mlflow_ui.rstrip('/')}/#/models/{settings.model.name}"
    if model != expected:
        yield f"Application/{name} link mlflow-model = {model!r}, expected {expected!r} (deploy.mlflow_ui, model.name)."


def model_name(root: Path, settings: Settings) -> list[str]:
    """params.yaml model.name is the one source of the model's name: every MLflow model link in the Argo CD
    Applications and the release files (which `conveyor deploy` writes from it) must name that model."""
    files = sorted((root / APPLICATIONS).glob("*.yaml"))
    files += [root / release.release_path(env) for env in settings.deploy.environments]
    failures = []
    for path in files:
        if not path.is_file():
            continue
        for found in sorted(set(MODEL_LINK.findall(path.read_text()))):
            if found != settings.model.name:
                failures.append(
                    f"{path.relative_to(root)}: links to MLflow model {found!r}, expected params.yaml "
                    f"model.name {settings.model.name!r}."
                )
    return failures


def _notifications(docs: list[Doc]) -> list[str]:
    config = one(docs, "ConfigMap", "argocd-notifications-cm")
    if config is None:
        return ["argocd/: no argocd-notifications-cm ConfigMap."]
    data = config.get("data") or {}
    failures = []
    subscriptions = dict(
        key.removeprefix(SUBSCRIBE).split(".", 1)
        for doc in find(docs, "Application")
        for key in (doc["metadata"].get("annotations") or {})
        if key.startswith(SUBSCRIBE)
    )
    for trigger in TRIGGERS:
        if trigger not in subscriptions:
            failures.append(f"no Application subscribes to {trigger}.")
            continue
        service = subscriptions[trigger]
        if f"service.webhook.{service}" not in data:
            failures.append(f"argocd-notifications-cm has no service.webhook.{service}.")
        conditions = yaml.safe_load(data.get(f"trigger.{trigger}", "null")) or []
        if not conditions:
            failures.append(f"argocd-notifications-cm has no trigger.{trigger}.")
        for condition in conditions:
            if condition.get("oncePer") != ONCE_PER:
                failures.append(f"trigger.{trigger} has oncePer {condition.get('oncePer')!r}; expected {ONCE_PER}.")
        for template in (t for c in conditions for t in c.get("send") or []):
            body = yaml.safe_load(data.get(f"template.{template}", "null")) or {}
            hook = _dig(body, "webhook", service) or {}
            text = str(hook.get("body", ""))
            if not str(hook.get("path", "")).endswith("/dispatches") or not all(
                f'"{key}"' in text for key in ("event_type", "environment", "revision")
            ):
                failures.append(f"template.{template} is not a repository_dispatch carrying environment and revision.")
            elif f'"revision": "{SYNCED_REVISION}"' not in text:
                failures.append(f"template.{template} does not send the synced revision {SYNCED_REVISION}.")
    return failures


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined, lines = [], []
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not lines:
            continue
        if line.rstrip().endswith("\\"):
            lines.append(line.rstrip()[:-1])
            continue
        lines.append(line)
        statement = " ".join(part.strip() for part in lines if not part.lstrip().startswith("#")).strip()
        lines = []
        if statement:
            word, _, rest = statement.partition(" ")
            joined.append((word.upper(), rest.strip()))
    return joined


def dockerfile(path: Path, settings: Settings) -> list[str]:
    """The serving image (the Dockerfile's last stage) against the pod: base pinned, uid, port, env."""
    if not path.is_file():
        return [f"{path.name} does not exist; the manifests run the image it defines."]
    steps = _instructions(path.read_text())
    path = Path(path.name)  # messages name the file as the repository does
    args = dict(a.split("=", 1) for word, a in steps if word == "ARG" and "=" in a)
    stages: set[str] = set()
    failures = []
    for word, rest in steps:
        if word != "FROM":
            continue
        image, _, alias = rest.partition(" AS ") if " AS " in rest else rest.partition(" as ")
        resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), image.strip())
        if resolved not in stages and not DIGEST.search(resolved):
            failures.append(f"{path}: FROM {image.strip()} ({resolved}) is not pinned by digest.")
        stages.add(alias.strip())
    runtime = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    users = [rest.split(":")[0] for word, rest in runtime if word == "USER"]
    if not users or users[-1] != str(APP_UID):
        failures.append(f"{path}: the serving stage runs as USER {users[-1] if users else 'root'}, expected {APP_UID}.")
    exposed = {p.split("/")[0] for word, rest in runtime if word == "EXPOSE" for p in rest.split()}
    if exposed != {str(settings.serve.port)}:
        failures.append(
            f"{path}: the serving stage EXPOSEs {sorted(exposed)}, expected serve.port {settings.serve.port}."
        )
    commands = [rest for word, rest in runtime if word == "CMD"]
    if not commands or WAIT_FOR_MODEL not in commands[-1]:
        failures.append(
            f"{path}: the serving stage's CMD {commands[-1] if commands else '(none)'} lacks {WAIT_FOR_MODEL}; "
            "expected it, as a pod starts before it may load its bundle and must answer 503, not exit."
        )
    env = dict(pair.split("=", 1) for word, rest in runtime if word == "ENV" for pair in rest.split() if "=" in pair)
    for name, value in container_env().items():
        if env.get(name) != value:
            failures.append(f"{path}: the serving stage sets ENV {name}={env.get(name)}, expected {value}.")
    return failures
