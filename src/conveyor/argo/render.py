"""dvc.yaml and params.yaml `argo` -> the WorkflowTemplate, CronWorkflow and RBAC under k8s/argo-workflows/.

One Argo task per dvc.yaml stage, running the stage's `cmd` in the pipeline image, after the stages that write
its deps. A `checkout` task first clones the repository at the `revision` parameter onto a shared volume and
gets the data as the GitHub runner does; every stage then works in that checkout, as `dvc repro` does locally. hera is
imported inside the functions: the CLI imports this module at every start."""

from __future__ import annotations

import posixpath
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from conveyor.argo import dag
from conveyor.argo.dag import Stage
from conveyor.config import ArgoSettings, Settings
from conveyor.errors import ConveyorError
from conveyor.paths import REPORTS

OUTPUT_DIR = Path("k8s/argo-workflows")
DVC_YAML = Path("dvc.yaml")
TRAIN_WORKFLOW = Path(".github/workflows/train.yml")

NAME = "conveyor-pipeline"  # the WorkflowTemplate, the CronWorkflow and the pods' ServiceAccount
SUBMITTER = "conveyor-submitter"  # the ServiceAccount whose token is ARGO_TOKEN
ENTRYPOINT = "pipeline"
CHECKOUT = "checkout"
REVISION = "revision"
WORKSPACE = "/workspace"  # the shared volume
CHECKOUT_DIR = f"{WORKSPACE}/repo"  # a fresh volume may hold lost+found, so the clone gets its own folder
SCRATCH = "/tmp"  # noqa: S108 - in the pod, an emptyDir of its own: the root filesystem is read-only
SOURCE_DIR = "src"  # on PYTHONPATH, so the revision's code runs, not the copy installed in the image
RUN_AS = 10001  # the pipeline image's user (Dockerfile, target pipeline)
GATE_OUTPUTS = {"gate-json": REPORTS / "gate.json", "gate-md": REPORTS / "gate.md"}
LABELS = {"app.kubernetes.io/part-of": "conveyor", "app.kubernetes.io/component": "pipeline"}
TASK_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

CHECKOUT_SCRIPT = """\
set -eu
rm -rf {dir}
git init --quiet {dir}
cd {dir}
git remote add origin "$REPOSITORY"
{fetch}
git checkout --quiet --detach FETCH_HEAD
conveyor ci data pull
"""
FETCH = 'git fetch --quiet --depth 1 origin "$REVISION"'
# A private repository: git asks this helper for the user name and token, which it reads from the environment
# (secretKeyRefs of argo.git_credentials). Given with -c for the one fetch, so nothing is written to .git/config;
# the URL stays as argo.repository names it, and the values are in no argument, URL or log line. The empty helper
# first clears any helper the image configures, so the token is stored nowhere.
GIT_USERNAME = "CONVEYOR_GIT_USERNAME"
GIT_PASSWORD = "CONVEYOR_GIT_PASSWORD"  # noqa: S105 - the variable's name, not a value
CREDENTIAL_HELPER = (
    f'!f() {{ test "$1" != get || printf "username=%s\\npassword=%s\\n" "${GIT_USERNAME}" "${GIT_PASSWORD}"; }}; f'
)
PRIVATE_FETCH = (
    f"GIT_TERMINAL_PROMPT=0 git -c credential.helper= -c credential.helper={shlex.quote(CREDENTIAL_HELPER)} "
    'fetch --quiet --depth 1 origin "$REVISION"\n'
    f"unset {GIT_USERNAME} {GIT_PASSWORD}"
)


def task_name(stage: str) -> str:
    """Argo names allow lowercase letters, digits and dashes; DVC stage names also allow underscores."""
    name = stage.lower().replace("_", "-")
    if not re.match(TASK_NAME, name) or len(name) > 63:
        raise ConveyorError(f"dvc.yaml: stage {stage!r} has no valid Argo task name; expected letters, digits, - or _.")
    return name


def schedules(path: Path) -> list[str]:
    """The cron entries of the train workflow's `on.schedule`: the one place the weekly schedule is written."""
    if not path.is_file():
        raise ConveyorError(
            f"{path}: missing; the CronWorkflow takes its schedule from the train workflow's on.schedule."
        )
    raw = yaml.safe_load(path.read_text()) or {}
    triggers = raw.get("on", raw.get(True)) if isinstance(raw, dict) else None  # YAML 1.1 reads a bare `on` as true
    entries = triggers.get("schedule") if isinstance(triggers, dict) else None
    crons = [entry.get("cron") for entry in entries or [] if isinstance(entry, dict)]
    if not crons or not all(isinstance(c, str) and c.strip() for c in crons):
        raise ConveyorError(f"{path}: on.schedule has no cron entry; expected the weekly retraining schedule there.")
    return crons


def _env(settings: ArgoSettings, **values: str) -> list[Any]:
    from hera.workflows import Env, SecretEnv

    plain = {"HOME": SCRATCH, "DVC_SITE_CACHE_DIR": f"{SCRATCH}/dvc"} | values
    return [Env(name=k, value=v) for k, v in plain.items()] + [
        SecretEnv(name=name, secret_name=ref.secret, secret_key=ref.key, optional=ref.optional or None)
        for name, ref in settings.secrets.items()
    ]


def _container(settings: ArgoSettings, name: str, script: str, working_dir: str, env: list[Any], **extra: Any) -> Any:
    from hera.workflows import Container, Resources, RetryStrategy
    from hera.workflows import models as m

    share = settings.resources(name)
    return Container(
        name=name,
        image=settings.image,
        image_pull_policy="IfNotPresent" if "@sha256:" in settings.image else "Always",
        command=["/bin/sh", "-c"],
        args=[script],
        working_dir=working_dir,
        env=env,
        resources=Resources(
            cpu_request=share.cpu, cpu_limit=share.cpu, memory_request=share.memory, memory_limit=share.memory
        ),
        retry_strategy=RetryStrategy(
            limit=share.retries,
            retry_policy=settings.retry.policy,
            backoff=m.Backoff(duration=f"{settings.retry.backoff_seconds}s", factor=settings.retry.factor),
        ),
        security_context=m.SecurityContext(
            run_as_non_root=True,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=m.Capabilities(drop=["ALL"]),
        ),
        volume_mounts=[
            m.VolumeMount(name="workspace", mount_path=WORKSPACE),
            m.VolumeMount(name="scratch", mount_path=SCRATCH),
        ],
        **extra,
    )


def _checkout(settings: ArgoSettings) -> Any:
    """The revision's code, then its data as the GitHub runner gets it (`conveyor ci data pull`)."""
    from hera.workflows import SecretEnv

    credentials = settings.git_credentials
    script = CHECKOUT_SCRIPT.format(
        dir=shlex.quote(posixpath.basename(CHECKOUT_DIR)), fetch=FETCH if credentials is None else PRIVATE_FETCH
    )
    env = _env(
        settings,
        REPOSITORY=settings.repository,
        REVISION=f"{{{{workflow.parameters.{REVISION}}}}}",
        PYTHONPATH=f"{CHECKOUT_DIR}/{SOURCE_DIR}",
    )
    if credentials is not None:  # the checkout's only: the stages run the repository's code and need no token
        env += [
            SecretEnv(name=GIT_USERNAME, secret_name=credentials.secret, secret_key=credentials.username_key),
            SecretEnv(name=GIT_PASSWORD, secret_name=credentials.secret, secret_key=credentials.password_key),
        ]
    return _container(settings, CHECKOUT, script, WORKSPACE, env)


def _stage(settings: ArgoSettings, stage: Stage, gate: Stage) -> Any:
    from hera.workflows import Parameter
    from hera.workflows import models as m

    extra = {}
    if stage is gate:
        extra["outputs"] = [
            Parameter(name=name, value_from=m.ValueFrom(path=f"{CHECKOUT_DIR}/{path.as_posix()}", default=""))
            for name, path in GATE_OUTPUTS.items()
        ]
    threads = str(settings.resources(task_name(stage.name)).threads)
    env = _env(settings, PYTHONPATH=f"{CHECKOUT_DIR}/{SOURCE_DIR}", OMP_NUM_THREADS=threads)
    workdir = posixpath.normpath(posixpath.join(CHECKOUT_DIR, stage.wdir))
    return _container(settings, task_name(stage.name), stage.cmd, workdir, env, **extra)


def _metadata(name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(LABELS)}


def workflow_template(settings: Settings, stages: list[Stage]) -> dict[str, Any]:
    from hera.workflows import DAG, EmptyDirVolume, Parameter, Task, WorkflowTemplate
    from hera.workflows import models as m

    argo = settings.argo
    names = [task_name(s.name) for s in stages]
    if len(set(names)) != len(names) or CHECKOUT in names:
        raise ConveyorError(
            f"dvc.yaml: stage names {names} clash as Argo task names; expected distinct names, none {CHECKOUT!r}."
        )
    unknown = sorted(set(argo.tasks) - {CHECKOUT, *names})
    if unknown:
        raise ConveyorError(
            f"params.yaml: argo.tasks names {unknown[0]!r}, which is no dvc.yaml stage; expected one of {names}."
        )
    gate = dag.writer_of(stages, GATE_OUTPUTS["gate-json"].as_posix())
    containers = [_checkout(argo), *(_stage(argo, s, gate) for s in stages)]
    tasks = [Task(name=CHECKOUT, template=CHECKOUT)] + [
        Task(
            name=task_name(s.name),
            template=task_name(s.name),
            dependencies=[task_name(u) for u in s.upstream] or [CHECKOUT],
        )
        for s in stages
    ]
    claim = m.PersistentVolumeClaimSpec(
        access_modes=[argo.workspace.access_mode],
        resources=m.VolumeResourceRequirements(requests={"storage": m.Quantity(argo.workspace.size)}),
        storage_class_name=argo.workspace.storage_class,
    )
    template = WorkflowTemplate(
        name=NAME,
        namespace=argo.namespace,
        labels=dict(LABELS),
        entrypoint=ENTRYPOINT,
        arguments=[Parameter(name=REVISION, value=argo.revision)],
        service_account_name=NAME,
        image_pull_secrets=[argo.image_pull_secret] if argo.image_pull_secret else None,
        security_context=m.PodSecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS,
            run_as_group=RUN_AS,
            fs_group=RUN_AS,
            seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
        ),
        active_deadline_seconds=argo.deadline_seconds,
        ttl_strategy=m.TTLStrategy(seconds_after_completion=argo.keep_finished_seconds),
        volume_claim_gc=m.VolumeClaimGC(strategy="OnWorkflowCompletion"),
        volume_claim_templates=[m.PersistentVolumeClaim(metadata=m.ObjectMeta(name="workspace"), spec=claim)],
        volumes=[EmptyDirVolume(name="scratch")],
        templates=[DAG(name=ENTRYPOINT, tasks=tasks), *containers],
    )
    return template.to_dict()


def cron_workflow(settings: Settings, crons: list[str]) -> dict[str, Any]:
    """Runs the WorkflowTemplate on the train workflow's schedule; GitHub's cron is in UTC.

    Suspended unless params.yaml argo.cron_workflow is `active`: train.yml's schedule already starts a run on Argo
    when ARGO_SERVER is set (and its `concurrencyPolicy: Forbid` covers only the CronWorkflow's own runs), so an
    active CronWorkflow beside it would train twice every week, and without ARGO_SERVER for nothing."""
    from hera.workflows import CronWorkflow
    from hera.workflows import models as m

    cron = CronWorkflow(
        name=NAME,
        namespace=settings.argo.namespace,
        labels=dict(LABELS),
        schedules=crons,
        timezone="UTC",
        concurrency_policy="Forbid",
        cron_suspend=settings.argo.cron_workflow == "suspended",
        workflow_template_ref=m.WorkflowTemplateRef(name=NAME),
    )
    return cron.to_dict()


def rbac(settings: Settings) -> list[dict[str, Any]]:
    """The pods' ServiceAccount (Argo's executor reports task results) and the submitter's, with its token."""
    namespace = settings.argo.namespace

    def role(name: str, rules: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
        return [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(name, namespace)},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": _metadata(name, namespace),
                "rules": [{"apiGroups": ["argoproj.io"], "resources": [r], "verbs": v} for r, v in rules],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": _metadata(name, namespace),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
            },
        ]

    token = _metadata(f"{SUBMITTER}-token", namespace)
    token["annotations"] = {"kubernetes.io/service-account.name": SUBMITTER}
    return [
        *role(NAME, [("workflowtaskresults", ["create", "patch"])]),
        *role(SUBMITTER, [("workflowtemplates", ["get"]), ("workflows", ["create", "get"])]),
        {"apiVersion": "v1", "kind": "Secret", "metadata": token, "type": "kubernetes.io/service-account-token"},
    ]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the checkout script) as literal blocks."""


_Dumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None),
)


def _yaml(docs: list[dict[str, Any]], header: str) -> str:
    body = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=True, explicit_start=len(docs) > 1, width=110)
    return header + body


def render(settings: Settings, root: Path) -> dict[Path, str]:
    """{path relative to root: text} for every file `conveyor argo render` writes."""
    stages = dag.read(root / DVC_YAML)
    header = f"# Generated by `conveyor argo render` from {DVC_YAML}, params.yaml (argo) and {TRAIN_WORKFLOW}.\n"
    header += "# Do not edit: change those and run `conveyor argo render`.\n"
    return {
        OUTPUT_DIR / "workflowtemplate.yaml": _yaml([workflow_template(settings, stages)], header),
        OUTPUT_DIR / "cronworkflow.yaml": _yaml([cron_workflow(settings, schedules(root / TRAIN_WORKFLOW))], header),
        OUTPUT_DIR / "rbac.yaml": _yaml(rbac(settings), header),
    }


def write(files: dict[Path, str], root: Path) -> None:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def stale(files: dict[Path, str], root: Path) -> list[Path]:
    """The files whose committed text differs from a fresh render, or that do not exist."""
    return [path for path, text in files.items() if not (root / path).is_file() or (root / path).read_text() != text]
