"""`conveyor argo render`: the WorkflowTemplate and CronWorkflow derived from dvc.yaml, params.yaml and train.yml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from conveyor import cli
from conveyor.argo import render
from conveyor.config import load_settings
from conveyor.errors import ConveyorError
from conveyor.manifests import validate
from tests.conftest import ROOT

CRON = "41 5 * * 2"
SCHEMAS = {"WorkflowTemplate": "workflowtemplate_v1alpha1.json", "CronWorkflow": "cronworkflow_v1alpha1.json"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's dvc.yaml, params.yaml and data.dvc, with a train workflow of a known schedule."""
    for name in ("dvc.yaml", "params.yaml", "data.dvc"):
        shutil.copy(ROOT / name, tmp_path / name)
    workflow = tmp_path / render.TRAIN_WORKFLOW
    workflow.parent.mkdir(parents=True)
    workflow.write_text(f"name: train\non:\n  schedule:\n    - cron: '{CRON}'\n  workflow_dispatch:\njobs: {{}}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def rendered(root: Path) -> dict[str, dict[str, Any]]:
    files = render.render(load_settings(root / "params.yaml"), root)
    docs = [doc for text in files.values() for doc in yaml.safe_load_all(text)]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def containers(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in template["spec"]["templates"] if "container" in t}


def dag_tasks(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entry = next(t for t in template["spec"]["templates"] if t["name"] == template["spec"]["entrypoint"])
    return {task["name"]: task for task in entry["dag"]["tasks"]}


def dvc_stages(root: Path) -> dict[str, dict[str, Any]]:
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


def _paths(entries: list[Any]) -> list[PurePosixPath]:
    return [PurePosixPath(next(iter(e)) if isinstance(e, dict) else e) for e in entries or []]


def test_one_task_per_stage_waiting_for_the_stages_that_write_its_deps(project: Path) -> None:
    template = rendered(project)[f"WorkflowTemplate/{render.NAME}"]
    tasks = dag_tasks(template)
    stages = dvc_stages(project)
    assert list(tasks) == [render.CHECKOUT, *stages]
    writes = {
        name: _paths(s.get("outs")) + _paths(s.get("metrics")) + _paths(s.get("plots")) for name, s in stages.items()
    }
    for name, stage in stages.items():
        expected = {
            other
            for other, outs in writes.items()
            if other != name
            and any(
                d == o or d.is_relative_to(o) or o.is_relative_to(d) for d in _paths(stage.get("deps")) for o in outs
            )
        }
        assert set(tasks[name]["dependencies"]) == (expected or {render.CHECKOUT}), name
        assert containers(template)[name]["container"]["args"] == [stage["cmd"]]
    assert "dependencies" not in tasks[render.CHECKOUT]


def test_each_task_runs_in_the_pipeline_image_with_its_resources_and_retries(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["argo"]["tasks"] = {"evaluate": {"cpu": "500m", "memory": "3Gi", "retries": 0}, "train": {"cpu": "3500m"}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    defaults = params["argo"]["defaults"]
    template = rendered(project)[f"WorkflowTemplate/{render.NAME}"]
    found = containers(template)

    def share(name: str) -> tuple[str, str, int]:
        resources = found[name]["container"]["resources"]
        assert resources["requests"] == resources["limits"], name
        return resources["requests"]["cpu"], resources["requests"]["memory"], found[name]["retryStrategy"]["limit"]

    assert share("evaluate") == ("500m", "3Gi", 0)
    assert share("train") == ("3500m", defaults["memory"], defaults["retries"])
    assert share("gate") == (defaults["cpu"], defaults["memory"], defaults["retries"])
    threads = {
        name: {e["name"]: e.get("value") for e in found[name]["container"]["env"]}["OMP_NUM_THREADS"]
        for name in ("train", "evaluate")
    }
    assert threads == {"train": "3", "evaluate": "1"}  # whole CPUs of the request, at least one
    for name, body in found.items():
        assert body["container"]["image"] == params["argo"]["image"], name
        assert body["retryStrategy"]["retryPolicy"] == params["argo"]["retry"]["policy"], name


def test_stages_share_a_workspace_that_the_checkout_fills_at_the_revision(project: Path) -> None:
    settings = load_settings(project / "params.yaml")
    template = rendered(project)[f"WorkflowTemplate/{render.NAME}"]
    claim = template["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == settings.argo.workspace.size
    assert claim["spec"]["accessModes"] == [settings.argo.workspace.access_mode]
    for name, body in containers(template).items():
        mounts = {m["name"]: m["mountPath"] for m in body["container"]["volumeMounts"]}
        assert mounts[claim["metadata"]["name"]] == render.WORKSPACE, name
    parameters = {p["name"]: p["value"] for p in template["spec"]["arguments"]["parameters"]}
    assert parameters == {render.REVISION: settings.argo.revision}
    checkout = containers(template)[render.CHECKOUT]["container"]
    env = {e["name"]: e.get("value") for e in checkout["env"]}
    assert env["REVISION"] == "{{workflow.parameters.revision}}"
    assert env["REPOSITORY"] == settings.argo.repository
    assert checkout["args"][0].rstrip().endswith("conveyor ci data pull")  # as the GitHub runner gets the data


def test_secrets_come_from_secret_key_refs_and_pods_run_as_the_images_user(project: Path) -> None:
    settings = load_settings(project / "params.yaml")
    template = rendered(project)[f"WorkflowTemplate/{render.NAME}"]
    pod = template["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == render.RUN_AS != 0
    dockerfile = (ROOT / "Dockerfile").read_text()
    pipeline = dockerfile.split("AS pipeline\n", 1)[1].split("\nFROM ", 1)[0]
    assert re.search(rf"^USER {render.RUN_AS}(:|$)", pipeline, re.MULTILINE), "the pipeline image's user"
    assert template["spec"]["serviceAccountName"] == render.NAME
    for name, body in containers(template).items():
        env = {e["name"]: e for e in body["container"]["env"]}
        for variable, ref in settings.argo.secrets.items():
            selector = {"name": ref.secret, "key": ref.key} | ({"optional": True} if ref.optional else {})
            assert env[variable] == {"name": variable, "valueFrom": {"secretKeyRef": selector}}, name
        assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["secretKeyRef"].get("optional") is None
        context = body["container"]["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
    assert "MLFLOW_TRACKING_URI" in settings.argo.secrets


PRIVATE = {"secret": "conveyor-git", "username_key": "username", "password_key": "token"}


def _private(project: Path, **argo: Any) -> dict[str, dict[str, Any]]:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["argo"].update(argo)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return rendered(project)


def _crd_errors(doc: dict[str, Any]) -> list[str]:
    folder, _ = validate.schema_dir(ROOT)
    if folder is None:
        pytest.skip(f"no CRD schema folder: set {validate.SCHEMA_ENV} (CI sets ../shared/schemas)")
    schema = json.loads((folder / "argoproj.io" / SCHEMAS[doc["kind"]]).read_text())
    checker = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)(schema)
    return [e.message for e in checker.iter_errors(doc)]


def test_a_public_repository_and_image_need_no_credentials(project: Path) -> None:
    settings = load_settings(project / "params.yaml")
    assert settings.argo.git_credentials is None and settings.argo.image_pull_secret is None
    template = rendered(project)[f"WorkflowTemplate/{render.NAME}"]
    assert "imagePullSecrets" not in template["spec"]
    for name, body in containers(template).items():
        names = {e["name"] for e in body["container"]["env"]}
        assert not names & {render.GIT_USERNAME, render.GIT_PASSWORD}, name
    script = containers(template)[render.CHECKOUT]["container"]["args"][0]
    assert "credential" not in script and render.FETCH in script.splitlines()


def test_a_private_repository_is_fetched_with_the_secrets_user_and_token(project: Path) -> None:
    """The checkout alone gets the Secret's keys as secretKeyRefs; git reads them through a credential helper given
    for the one fetch, so the URL, the arguments, .git/config and the rendered YAML hold no value."""
    docs = _private(project, git_credentials=PRIVATE)
    template = docs[f"WorkflowTemplate/{render.NAME}"]
    assert _crd_errors(template) == []
    checkout = containers(template)[render.CHECKOUT]["container"]
    env = {e["name"]: e for e in checkout["env"]}
    assert env[render.GIT_USERNAME] == {
        "name": render.GIT_USERNAME,
        "valueFrom": {"secretKeyRef": {"name": "conveyor-git", "key": "username"}},
    }
    assert env[render.GIT_PASSWORD] == {
        "name": render.GIT_PASSWORD,
        "valueFrom": {"secretKeyRef": {"name": "conveyor-git", "key": "token"}},
    }
    assert env["REPOSITORY"]["value"] == load_settings(project / "params.yaml").argo.repository
    assert "@" not in env["REPOSITORY"]["value"]
    for name, body in containers(template).items():
        if name != render.CHECKOUT:
            names = {e["name"] for e in body["container"]["env"]}
            assert not names & {render.GIT_USERNAME, render.GIT_PASSWORD}, f"{name} runs with the git token"

    # The rendered line, run by sh as in the pod, with `credential fill` in place of the fetch: what git gets.
    script = checkout["args"][0]
    line = next(x for x in script.splitlines() if "credential.helper" in x)
    assert line.endswith(render.FETCH.removeprefix("git "))
    fill = line.removesuffix(render.FETCH.removeprefix("git ")) + "credential fill"
    secret = {render.GIT_USERNAME: "conveyor-bot", render.GIT_PASSWORD: "ghp_not-a-real-token"}
    done = subprocess.run(
        ["/bin/sh", "-c", fill],
        input="protocol=https\nhost=github.com\npath=conveyor-org/conveyor.git\n\n",
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={"PATH": os.environ["PATH"], "HOME": str(project), "GIT_CONFIG_NOSYSTEM": "1"} | secret,
    )
    assert "username=conveyor-bot\npassword=ghp_not-a-real-token\n" in done.stdout
    assert "ghp_not-a-real-token" not in done.stderr
    assert f"unset {render.GIT_USERNAME} {render.GIT_PASSWORD}" in script.split(line, 1)[1].split("conveyor ci")[0]
    assert all("ghp_" not in text for text in render.render(load_settings(project / "params.yaml"), project).values())


def test_a_private_image_is_pulled_with_the_named_secret(project: Path) -> None:
    docs = _private(project, image_pull_secret="conveyor-registry")
    template = docs[f"WorkflowTemplate/{render.NAME}"]
    assert template["spec"]["imagePullSecrets"] == [{"name": "conveyor-registry"}]
    assert _crd_errors(template) == []
    cron = docs[f"CronWorkflow/{render.NAME}"]
    assert cron["spec"]["workflowSpec"]["workflowTemplateRef"]["name"] == render.NAME  # the template's pull secret


@pytest.mark.parametrize(
    ("argo", "message"),
    [
        (
            {"git_credentials": PRIVATE, "repository": "git@github.com:conveyor-org/conveyor.git"},
            r"argo\.git_credentials = \{secret: conveyor-git, username_key: username, password_key: token\} is "
            r"invalid: expected an https:// argo\.repository for a user name and token, not 'git@github\.com:",
        ),
        (
            {"repository": "https://bot:ghp_abc@github.com/conveyor-org/conveyor.git"},
            r"argo\.repository = 'https://bot:ghp_abc@.*' is invalid: expected no user or token in the URL, which "
            r"git and the workflow's logs would show; use argo\.git_credentials\.$",
        ),
        ({"git_credentials": PRIVATE | {"token_key": "x"}}, r"unknown key 'argo\.git_credentials\.token_key'"),
        ({"git_credentials": {"username_key": "u"}}, r"required field 'argo\.git_credentials\.secret' is missing"),
        ({"image_pull_secret": "GHCR_Pull"}, r"argo\.image_pull_secret = 'GHCR_Pull' is invalid: string should match"),
    ],
)
def test_private_repository_settings_are_checked_in_one_sentence(
    project: Path, argo: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConveyorError, match=message) as raised:
        _private(project, **argo)
    assert "\n" not in str(raised.value)


def test_the_gate_task_hands_its_report_back_as_output_parameters(project: Path) -> None:
    template = rendered(project)[f"WorkflowTemplate/{render.NAME}"]
    writers = [
        name
        for name, s in dvc_stages(project).items()
        if "reports/gate.json" in [str(p) for p in _paths(s.get("metrics"))]
    ]
    assert len(writers) == 1
    outputs = containers(template)[writers[0]]["outputs"]["parameters"]
    assert {p["name"]: p["valueFrom"]["path"] for p in outputs} == {
        "gate-json": f"{render.CHECKOUT_DIR}/reports/gate.json",
        "gate-md": f"{render.CHECKOUT_DIR}/reports/gate.md",
    }


def test_the_cron_workflow_runs_the_template_on_the_train_workflows_schedule(project: Path) -> None:
    objects = rendered(project)
    cron = objects[f"CronWorkflow/{render.NAME}"]
    assert cron["spec"]["schedules"] == [CRON]
    assert cron["spec"]["timezone"] == "UTC"
    assert cron["spec"]["workflowSpec"]["workflowTemplateRef"]["name"] == render.NAME
    assert f"WorkflowTemplate/{render.NAME}" in objects


def test_one_scheduler_the_cron_workflow_is_suspended_unless_switched_on(project: Path) -> None:
    """train.yml's schedule submits to Argo itself when ARGO_SERVER is set; an active CronWorkflow beside it would
    train twice every week (its concurrencyPolicy covers only its own runs), and without ARGO_SERVER for nothing."""
    cron = rendered(project)[f"CronWorkflow/{render.NAME}"]
    assert cron["spec"]["suspend"] is True
    assert "suspend" not in cron["spec"]["workflowSpec"], "spec.suspend stops the schedule; the workflow's would hang"
    committed = yaml.safe_load((ROOT / render.OUTPUT_DIR / "cronworkflow.yaml").read_text())
    assert committed["spec"]["suspend"] is True, "the CronWorkflow applied from this repository schedules nothing"
    assert load_settings(ROOT / "params.yaml").argo.cron_workflow == "suspended"

    params = project / "params.yaml"
    params.write_text(params.read_text().replace("cron_workflow: suspended", "cron_workflow: active"))
    active = rendered(project)[f"CronWorkflow/{render.NAME}"]
    assert active["spec"].get("suspend") is False and active["spec"]["schedules"] == [CRON]


def test_render_check_fails_when_any_source_changes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["argo", "render", "--check"]) == 1  # nothing written yet
    assert cli.main(["argo", "render"]) == 0
    first = {p: p.read_text() for p in (project / render.OUTPUT_DIR).iterdir()}
    assert cli.main(["argo", "render"]) == 0
    assert {p: p.read_text() for p in (project / render.OUTPUT_DIR).iterdir()} == first  # deterministic
    assert cli.main(["argo", "render", "--check"]) == 0

    workflow = project / render.TRAIN_WORKFLOW
    workflow.write_text(workflow.read_text().replace(CRON, "0 1 * * 0"))
    capsys.readouterr()
    assert cli.main(["argo", "render", "--check"]) == 1
    assert "cronworkflow.yaml is stale" in capsys.readouterr().err
    assert cli.main(["argo", "render"]) == 0

    dvc = project / "dvc.yaml"
    dvc.write_text(dvc.read_text().replace("cmd: conveyor latency", "cmd: conveyor latency --quick"))
    assert cli.main(["argo", "render", "--check"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"{render.OUTPUT_DIR / 'workflowtemplate.yaml'} is stale: run `conveyor argo render` and commit it."
    )


@pytest.mark.parametrize(
    ("workflow", "message"),
    [
        (None, r"train\.yml: missing; the CronWorkflow takes its schedule"),
        ("on:\n  push:\njobs: {}\n", r"train\.yml: on\.schedule has no cron entry"),
    ],
)
def test_a_train_workflow_without_a_schedule_is_refused(project: Path, workflow: str | None, message: str) -> None:
    path = project / render.TRAIN_WORKFLOW
    path.unlink()
    if workflow:
        path.write_text(workflow)
    with pytest.raises(ConveyorError, match=message):
        rendered(project)


def test_params_naming_a_task_that_is_no_stage_is_refused(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["argo"]["tasks"]["trian"] = {"cpu": "2"}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConveyorError, match=r"argo\.tasks names 'trian', which is no dvc\.yaml stage"):
        rendered(project)


@pytest.mark.parametrize("change", ["drop", "optional"])
def test_params_without_a_required_tracking_uri_secret_are_refused(project: Path, change: str) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    if change == "drop":
        del params["argo"]["secrets"]["MLFLOW_TRACKING_URI"]
    else:
        params["argo"]["secrets"]["MLFLOW_TRACKING_URI"]["optional"] = True
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(
        ConveyorError, match=r"(?i)argo\.secrets = a mapping is invalid: .*a required MLFLOW_TRACKING_URI"
    ):
        load_settings(project / "params.yaml")


def test_the_committed_argo_workflows_folder_is_fresh() -> None:
    """The YAML under k8s/argo-workflows is what `conveyor argo render` makes of the committed sources."""
    stale = render.stale(render.render(load_settings(ROOT / "params.yaml"), ROOT), ROOT)
    assert stale == [], f"stale: {[str(p) for p in stale]}; run `conveyor argo render`"


def test_the_committed_objects_validate_against_the_argo_crd_schemas() -> None:
    folder, _ = validate.schema_dir(ROOT)
    if folder is None:
        pytest.skip(f"no CRD schema folder: set {validate.SCHEMA_ENV} (CI sets ../shared/schemas)")
    docs = [
        doc
        for path in sorted((ROOT / render.OUTPUT_DIR).glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc["kind"] in SCHEMAS
    ]
    assert sorted(d["kind"] for d in docs) == sorted(SCHEMAS)
    for doc in docs:
        schema = json.loads((folder / "argoproj.io" / SCHEMAS[doc["kind"]]).read_text())
        checker = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)(schema)
        assert [e.message for e in checker.iter_errors(doc)] == [], doc["kind"]
        broken = yaml.safe_load(yaml.safe_dump(doc))
        broken["spec"]["schedules" if doc["kind"] == "CronWorkflow" else "entrypoint"] = 7
        assert list(checker.iter_errors(broken)), f"the {doc['kind']} schema accepts a wrong type"
