"""`conveyor argo submit` against a fake Argo Server on 127.0.0.1.

The fake is a stand-in at the HTTP boundary only, because no Kubernetes cluster or Argo Server runs here: it
answers the two REST calls the command makes (POST /api/v1/workflows/{ns}/submit, GET
/api/v1/workflows/{ns}/{name}) in the shapes the Argo Server uses, checks the bearer token, and records every
request. The submitted body is checked against the WorkflowSubmitRequest schema of Argo's OpenAPI spec (as
hera's generated models carry it), and against the WorkflowTemplate that `conveyor argo render` makes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hera.workflows.models import WorkflowSubmitRequest

from conveyor import cli
from conveyor.argo import dag, render
from conveyor.config import load_settings
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
TOKEN = "s3cr3t-token"
WORKFLOW = "conveyor-pipeline-x7k2q"
PASSED = {"passed": True, "model_version": "4", "failures": [], "checks": {"evaluate": True}}
FAILED = {"passed": False, "model_version": None, "failures": ["fairness: eod = 0.2 > 0.1"], "checks": {}}


def _strict(schema: Any) -> Any:
    """Every object schema refuses unknown keys, so a misspelt field fails the check."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(v) for v in schema]
    return schema


SUBMIT_SCHEMA = _strict(WorkflowSubmitRequest.model_json_schema(by_alias=True))


@dataclass
class Scenario:
    """What the fake server answers: phases for successive GETs (the last repeats), the gate pod's outputs."""

    phases: list[str]
    gate: dict[str, Any] | None = None
    gate_phase: str = "Succeeded"
    failed_task: str | None = None
    unavailable_polls: int = 0
    template_exists: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        phase = self.phases.pop(0) if len(self.phases) > 1 else self.phases[0]
        status: dict[str, Any] = {"phase": phase, "progress": "3/9", "nodes": {}}
        if phase == "Running":
            return status
        nodes = status["nodes"]
        nodes[WORKFLOW] = {"id": WORKFLOW, "type": "DAG", "displayName": WORKFLOW, "phase": phase}
        if self.failed_task:
            nodes[f"{WORKFLOW}-1"] = {
                "id": f"{WORKFLOW}-1", "type": "Pod", "displayName": f"{self.failed_task}(0)",
                "templateName": self.failed_task, "phase": "Failed", "message": "Error (exit code 1)",
            }  # fmt: skip
        if self.gate is not None:
            nodes[f"{WORKFLOW}-2"] = {"id": f"{WORKFLOW}-2", "type": "Retry", "displayName": "gate", "phase": phase}
            for attempt, finished in enumerate(("2025-01-06T05:00:00Z", "2025-01-06T05:09:00Z")):
                gate = self.gate if attempt else {"passed": "an older attempt"}
                nodes[f"{WORKFLOW}-3{attempt}"] = {
                    "id": f"{WORKFLOW}-3{attempt}", "type": "Pod", "displayName": f"gate({attempt})",
                    "templateName": "gate", "phase": self.gate_phase, "finishedAt": finished,
                    "outputs": {"exitCode": "0", "parameters": [
                        {"name": "gate-json", "value": json.dumps(gate)},
                        {"name": "gate-md", "value": f"### Conveyor gate {gate['passed']}\n"},
                    ]},
                }  # fmt: skip
        return status


class Handler(BaseHTTPRequestHandler):
    server: FakeArgo

    def log_message(self, *args: Any) -> None:  # keep pytest output quiet
        return

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.scenario.requests.append(
            {"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"), "body": body}
        )
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401, {"code": 16, "message": "token not valid. see https://argo-workflows.readthedocs.io/"})
            return None
        return body or {}

    def do_POST(self) -> None:
        body = self._record()
        if body is None:
            return
        namespace = body.get("namespace")
        if self.path != f"/api/v1/workflows/{namespace}/submit":
            self._answer(404, {"code": 5, "message": "Not Found"})
        elif not self.server.scenario.template_exists:
            message = f'workflowtemplates.argoproj.io "{body.get("resourceName")}" not found'
            self._answer(404, {"code": 5, "message": message})
        else:
            self._answer(200, {"metadata": {"name": WORKFLOW, "namespace": namespace}, "status": {}})

    def do_GET(self) -> None:
        if self._record() is None:
            return
        scenario = self.server.scenario
        if not self.path.endswith(f"/{WORKFLOW}"):
            self._answer(404, {"code": 5, "message": "Not Found"})
        elif scenario.unavailable_polls:
            scenario.unavailable_polls -= 1
            self._answer(503, {"code": 14, "message": "upstream connect error"})
        else:
            self._answer(200, {"metadata": {"name": WORKFLOW}, "status": scenario.status()})


class FakeArgo(ThreadingHTTPServer):
    scenario: Scenario


@pytest.fixture
def argo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArgo]:
    """The fake server, the environment a GitHub job sets, and a working directory with the repo's params.yaml."""
    server = FakeArgo(("127.0.0.1", 0), Handler)
    server.scenario = Scenario(phases=["Running"])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ARGO_SERVER", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("ARGO_TOKEN", TOKEN)
    monkeypatch.delenv("ARGO_NAMESPACE", raising=False)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def submit(*extra: str) -> int:
    return cli.main(["argo", "submit", "--revision", "0123abc", "--poll", "0.01", "--timeout", "5", *extra])


def test_submits_the_template_polls_and_brings_the_passed_gate_home(argo: FakeArgo) -> None:
    argo.scenario = Scenario(phases=["Pending", "Running", "Running", "Succeeded"], gate=PASSED)
    assert submit() == 0
    assert json.loads(Path("reports/gate.json").read_text()) == PASSED
    assert Path("reports/gate.md").read_text() == "### Conveyor gate True\n"

    requests = argo.scenario.requests
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in requests)
    assert [r["method"] for r in requests] == ["POST", "GET", "GET", "GET", "GET"]
    settings = load_settings()
    namespace = settings.argo.namespace
    assert requests[0]["path"] == f"/api/v1/workflows/{namespace}/submit"
    assert {r["path"] for r in requests[1:]} == {f"/api/v1/workflows/{namespace}/{WORKFLOW}"}

    body = requests[0]["body"]
    jsonschema.validate(body, SUBMIT_SCHEMA)
    template = render.workflow_template(settings, dag.read(ROOT / "dvc.yaml"))
    assert (body["resourceKind"], body["resourceName"]) == (template["kind"], template["metadata"]["name"])
    assert body["namespace"] == template["metadata"]["namespace"]
    declared = {p["name"] for p in template["spec"]["arguments"]["parameters"]}
    passed = dict(p.split("=", 1) for p in body["submitOptions"]["parameters"])
    assert passed == {"revision": "0123abc"} and set(passed) <= declared


def test_the_schema_check_is_strict() -> None:
    """A control for the check above: the schema refuses a misspelt field and a wrong type."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"resourceKind": "WorkflowTemplate", "submitOption": {}}, SUBMIT_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"submitOptions": {"parameters": "revision=x"}}, SUBMIT_SCHEMA)


def test_a_failed_gate_is_written_and_exits_non_zero(argo: FakeArgo) -> None:
    argo.scenario = Scenario(phases=["Running", "Failed"], gate=FAILED, gate_phase="Failed", failed_task="gate")
    assert submit() == 1
    assert json.loads(Path("reports/gate.json").read_text()) == FAILED


def test_a_workflow_that_failed_before_the_gate_names_the_failed_task(argo: FakeArgo, capsys) -> None:
    argo.scenario = Scenario(phases=["Running", "Failed"], failed_task="quality")
    assert submit() == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"error: workflow {WORKFLOW} ended Failed before the gate wrote its report; "
        "failed tasks: quality(0) (Error (exit code 1))."
    )
    assert not Path("reports/gate.json").exists()


def test_a_rejected_token_fails_at_once_with_one_sentence(argo: FakeArgo, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "Bearer wrong")
    assert submit() == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: the Argo Server at http://127.0.0.1:") and "rejected ARGO_TOKEN (401" in error
    assert error.count("\n") == 0
    assert [r["auth"] for r in argo.scenario.requests] == ["Bearer wrong"]  # never polled, prefix not doubled


def test_a_workflow_still_running_at_the_timeout_stops_the_wait(argo: FakeArgo, capsys) -> None:
    argo.scenario = Scenario(phases=["Running"])
    assert submit("--timeout", "0.3") == 2
    assert "did not finish within the timeout (last phase Running)" in capsys.readouterr().err
    assert len(argo.scenario.requests) > 2


def test_a_briefly_unavailable_server_is_polled_again(argo: FakeArgo, capsys) -> None:
    argo.scenario = Scenario(phases=["Succeeded"], gate=PASSED, unavailable_polls=2)
    assert submit() == 0
    assert capsys.readouterr().err.count("answered 503") == 2


def test_a_missing_template_is_explained(argo: FakeArgo, capsys) -> None:
    argo.scenario = Scenario(phases=["Running"], template_exists=False)
    assert submit() == 2
    error = capsys.readouterr().err
    assert "found nothing to submit WorkflowTemplate conveyor-pipeline" in error and "not found" in error


def test_host_and_port_without_a_scheme_and_another_namespace(argo: FakeArgo, monkeypatch) -> None:
    monkeypatch.setenv("ARGO_SERVER", f"127.0.0.1:{argo.server_address[1]}")
    monkeypatch.setenv("ARGO_SECURE", "false")
    monkeypatch.setenv("ARGO_NAMESPACE", "ml-team")
    argo.scenario = Scenario(phases=["Succeeded"], gate=PASSED)
    assert submit() == 0
    assert argo.scenario.requests[0]["path"] == "/api/v1/workflows/ml-team/submit"


@pytest.mark.parametrize(
    ("unset", "message"),
    [("ARGO_SERVER", "error: ARGO_SERVER is not set;"), ("ARGO_TOKEN", "error: ARGO_TOKEN is not set;")],
)
def test_missing_settings_are_named(argo: FakeArgo, monkeypatch, capsys, unset: str, message: str) -> None:
    monkeypatch.delenv(unset)
    assert submit() == 2
    assert capsys.readouterr().err.startswith(message)
    assert argo.scenario.requests == []


def test_an_unreachable_server_is_named(argo: FakeArgo, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ARGO_SERVER", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert submit() == 2
    assert capsys.readouterr().err.startswith("error: could not reach ARGO_SERVER = http://127.0.0.1:9 to submit")
