"""`conveyor argo submit`: run the WorkflowTemplate on an Argo Server, wait for it, and fetch the gate report.

The Argo Server's REST API: POST /api/v1/workflows/{namespace}/submit with resourceKind WorkflowTemplate creates
a Workflow; GET /api/v1/workflows/{namespace}/{name} reads it until status.phase is final. The gate task's
output parameters (argo_render.GATE_OUTPUTS) carry reports/gate.json and reports/gate.md back here."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import httpx

from conveyor.argo.render import GATE_OUTPUTS, NAME, REVISION, SUBMITTER
from conveyor.errors import ConveyorError

SERVER_ENV, TOKEN_ENV, NAMESPACE_ENV, SECURE_ENV = "ARGO_SERVER", "ARGO_TOKEN", "ARGO_NAMESPACE", "ARGO_SECURE"
FINAL_PHASES = ("Succeeded", "Failed", "Error")
REQUEST_SECONDS = 30.0
TRANSIENT_STATUS = (502, 503, 504)
SUBMITTED_BY = "conveyor.dev/submitted-by=conveyor-argo-submit"


class TransientError(ConveyorError):
    """The server could not be reached or was briefly unavailable: polling tries again."""


@dataclass(frozen=True)
class Server:
    url: str
    token: str
    namespace: str

    @classmethod
    def from_env(cls, namespace: str) -> Server:
        """ARGO_SERVER (a URL, or host:port as the argo CLI takes it, https unless ARGO_SECURE=false),
        ARGO_TOKEN (with or without the `Bearer ` prefix `argo auth token` prints), ARGO_NAMESPACE (optional)."""
        url = os.environ.get(SERVER_ENV, "").strip()
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not url:
            raise ConveyorError(
                f"{SERVER_ENV} is not set; expected the Argo Server's address, e.g. https://argo.example.com:2746."
            )
        if not token:
            raise ConveyorError(f"{TOKEN_ENV} is not set; expected a bearer token of the {SUBMITTER} ServiceAccount.")
        if "://" not in url:
            secure = os.environ.get(SECURE_ENV, "true").strip().lower() != "false"
            url = f"{'https' if secure else 'http'}://{url}"
        bearer = token if token.startswith("Bearer ") else f"Bearer {token}"
        return cls(url.rstrip("/"), bearer, os.environ.get(NAMESPACE_ENV, "").strip() or namespace)


@dataclass(frozen=True)
class Outcome:
    workflow: str
    phase: str
    gate: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.phase == "Succeeded" and self.gate.get("passed") is True


def _message(response: httpx.Response) -> str:
    """The Argo Server's error body is {"code": ..., "message": ...}; fall back to the raw text."""
    try:
        return str(response.json().get("message", "")).strip() or response.reason_phrase
    except (ValueError, AttributeError):
        return response.text.strip()[:200] or response.reason_phrase


def _request(client: httpx.Client, server: Server, method: str, path: str, doing: str, **kwargs: Any) -> dict[str, Any]:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise TransientError(
            f"could not reach {SERVER_ENV} = {server.url} to {doing} ({type(exc).__name__})."
        ) from None
    status = response.status_code
    if status == 401:
        raise ConveyorError(
            f"the Argo Server at {server.url} rejected {TOKEN_ENV} (401 Unauthorized); expected a valid bearer token, "
            f"e.g. from the {SUBMITTER}-token Secret."
        )
    if status == 403:
        raise ConveyorError(
            f"{TOKEN_ENV} may not {doing} in namespace {server.namespace} (403 Forbidden): {_message(response)}."
        )
    if status == 404:
        raise ConveyorError(
            f"the Argo Server found nothing to {doing} in namespace {server.namespace} (404): {_message(response)}."
        )
    if status in TRANSIENT_STATUS:
        raise TransientError(f"the Argo Server answered {status} to {doing}: {_message(response)}.")
    if status >= 400:
        raise ConveyorError(f"the Argo Server answered {status} to {doing}: {_message(response)}.")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ConveyorError(f"the Argo Server answered {doing} with no JSON object; expected a Workflow.")
    return body


def submit_body(server: Server, revision: str) -> dict[str, Any]:
    """An io.argoproj.workflow.v1alpha1.WorkflowSubmitRequest for the rendered WorkflowTemplate."""
    return {
        "namespace": server.namespace,
        "resourceKind": "WorkflowTemplate",
        "resourceName": NAME,
        "submitOptions": {"parameters": [f"{REVISION}={revision}"], "labels": SUBMITTED_BY},
    }


def _wait(client: httpx.Client, server: Server, name: str, deadline: float, poll: float) -> dict[str, Any]:
    """GET the workflow until its phase is final; brief outages are retried until the deadline."""
    shown, phase = None, "Pending"
    while True:
        try:
            workflow = _request(
                client, server, "GET", f"/api/v1/workflows/{server.namespace}/{name}", f"read workflow {name}"
            )
        except TransientError as exc:
            print(f"  ! {exc}", file=sys.stderr)
        else:
            status = workflow.get("status") or {}
            phase = status.get("phase") or "Pending"
            if (phase, status.get("progress")) != shown:
                shown = (phase, status.get("progress"))
                print(f"workflow {name}: {phase} {status.get('progress') or ''}".rstrip())
            if phase in FINAL_PHASES:
                return workflow
        if time.monotonic() + poll > deadline:
            raise ConveyorError(
                f"workflow {name} did not finish within the timeout (last phase {phase}); it keeps running on the cluster."
            )
        time.sleep(poll)


def gate_outputs(workflow: dict[str, Any]) -> dict[str, str] | None:
    """The gate task's output parameters from its newest pod that wrote them, or None."""
    nodes = ((workflow.get("status") or {}).get("nodes") or {}).values()
    found = []
    for node in nodes:
        params = {p.get("name"): p.get("value") or "" for p in (node.get("outputs") or {}).get("parameters") or []}
        if node.get("type") == "Pod" and all(params.get(name) for name in GATE_OUTPUTS):
            found.append((node.get("finishedAt") or "", params))
    return max(found, key=lambda item: item[0])[1] if found else None


def failed_tasks(workflow: dict[str, Any]) -> list[str]:
    nodes = ((workflow.get("status") or {}).get("nodes") or {}).values()
    return sorted(
        f"{n.get('displayName')} ({n.get('message') or n.get('phase')})"
        for n in nodes
        if n.get("type") == "Pod" and n.get("phase") in ("Failed", "Error")
    )


def run(server: Server, revision: str, timeout: float, poll: float) -> Outcome:
    """Submit, wait, write reports/gate.json and gate.md; the Outcome says whether the run may ship."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": server.token, "Accept": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=REQUEST_SECONDS) as client:
        created = _request(
            client,
            server,
            "POST",
            f"/api/v1/workflows/{server.namespace}/submit",
            f"submit WorkflowTemplate {NAME}",
            json=submit_body(server, revision),
        )
        name = str((created.get("metadata") or {}).get("name") or "")
        if not name:
            raise ConveyorError(
                "the Argo Server answered the submission with no metadata.name; expected the new Workflow."
            )
        print(f"submitted workflow {name} (revision {revision}) to {server.url}, namespace {server.namespace}")
        workflow = _wait(client, server, name, deadline, poll)
    phase = workflow["status"]["phase"]
    outputs = gate_outputs(workflow)
    if outputs is None:
        failed = ", ".join(failed_tasks(workflow)) or "none"
        raise ConveyorError(f"workflow {name} ended {phase} before the gate wrote its report; failed tasks: {failed}.")
    try:
        gate = json.loads(outputs["gate-json"])
    except json.JSONDecodeError:
        raise ConveyorError(f"workflow {name}: the gate-json output is not JSON; expected reports/gate.json.") from None
    for parameter, path in GATE_OUTPUTS.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(outputs[parameter])
    print(outputs["gate-md"])
    outcome = Outcome(workflow=name, phase=phase, gate=gate)
    if not outcome.passed:
        print(f"workflow {name} ended {phase}; gate passed: {gate.get('passed')}", file=sys.stderr)
    return outcome
