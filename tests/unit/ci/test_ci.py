"""`conveyor ci`: job outputs, the step summary, and the Argo CD wait (against a small HTTP server standing in
for Argo CD, which cannot run here). The metrics diff and the data step run real DVC in
tests/integration/test_workflows_helpers.py."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from conveyor.checks import CHECKS
from conveyor.checks.result import CheckResult
from conveyor.ci import argocd, github
from conveyor.errors import ConveyorError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32


def write_gate(reports: Path, passed: bool, version: str | None) -> None:
    reports.mkdir(parents=True, exist_ok=True)
    summary = {"passed": passed, "model_version": version, "run_id": "r1", "failures": [], "checks": {}}
    (reports / "gate.json").write_text(json.dumps(summary))
    (reports / "gate.md").write_text("### Conveyor gate passed\n")


def write_metadata(path: Path, commit: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "3", "git_commit": commit}))
    return path


def test_image_name_follows_the_contract_with_a_lower_case_owner() -> None:
    assert github.image_name("ghcr.io", "Conveyor-Org", "3", COMMIT) == "ghcr.io/conveyor-org/conveyor:3-0123456"
    with pytest.raises(ConveyorError, match="--sha"):
        github.image_name("ghcr.io", "o", "3", "main")


def test_gate_outputs_name_the_image_only_for_a_passed_gate(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    metadata = write_metadata(tmp_path / "models" / "metadata.json", COMMIT + "-dirty")
    write_gate(reports, True, "3")
    outputs = github.gate_outputs(reports, metadata, COMMIT, "ghcr.io", "Org")
    assert outputs == {
        "passed": "true",
        "model-version": "3",
        "run-id": "r1",
        "image": "ghcr.io/org/conveyor:3-0123456",
    }
    write_gate(reports, False, None)
    assert github.gate_outputs(reports, metadata, COMMIT, "ghcr.io", "Org") == {
        "passed": "false",
        "model-version": "",
        "run-id": "r1",
    }


def test_gate_outputs_refuse_a_model_of_another_commit(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    write_gate(reports, True, "3")
    metadata = write_metadata(tmp_path / "metadata.json", "f" * 40)
    with pytest.raises(ConveyorError, match="not the commit being built"):
        github.gate_outputs(reports, metadata, COMMIT, "ghcr.io", "org")


def test_a_pipeline_stopped_before_the_gate_still_gets_a_table(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    CheckResult.from_failures("quality", ["row_count = 10 < 1000"]).write(reports)
    verdict, table = github.gate_report(reports)
    assert verdict["passed"] is False and verdict["failures"][0] == "quality: row_count = 10 < 1000"
    assert verdict["checks"] == {
        "quality": False,
        "drift": False,
        "evaluate": False,
        "fairness": False,
        "latency": False,
        "behaviour": False,
    }
    quality_row = next(line for line in table.splitlines() if line.startswith("| ❌ fail | quality |"))
    assert "**row_count = 10 < 1000**" in quality_row
    assert table.count("row_count = 10 < 1000") == 1  # the row says why the run stopped, nothing repeats it
    assert "latency did not run" in table


def test_outputs_and_summary_append_to_the_files_actions_names(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    (tmp_path / "out").write_text("earlier=1\n")
    github.write_outputs({"passed": "true", "model-version": "3"})
    github.write_summary("| table |")
    assert (tmp_path / "out").read_text() == "earlier=1\npassed=true\nmodel-version=3\n"
    assert (tmp_path / "summary").read_text() == "| table |\n"
    with pytest.raises(ConveyorError, match="spans lines"):
        github.write_outputs({"x": "a\nb"})


def app(health: str, sync: str, images: list[str]) -> dict[str, Any]:
    return {"status": {"health": {"status": health}, "sync": {"status": sync}, "summary": {"images": images}}}


def test_argocd_state_needs_healthy_synced_and_the_pinned_digest() -> None:
    image = f"ghcr.io/o/conveyor:3-0123456@{DIGEST}"
    assert argocd.state(app("Healthy", "Synced", [image]), DIGEST)[0]
    assert not argocd.state(app("Healthy", "Synced", ["ghcr.io/o/conveyor:2-fffffff@sha256:" + "cd" * 32]), DIGEST)[0]
    assert not argocd.state(app("Progressing", "Synced", [image]), DIGEST)[0]
    assert not argocd.state(app("Healthy", "OutOfSync", [image]), DIGEST)[0]
    with pytest.raises(ConveyorError, match="Degraded"):
        argocd.state(app("Degraded", "Synced", [image]), DIGEST)


def test_argocd_wait_gives_up_after_the_timeout() -> None:
    now = [0.0]
    polls: list[float] = []

    def fetch() -> dict[str, Any]:
        polls.append(now[0])
        return app("Progressing", "Synced", [])

    with pytest.raises(ConveyorError, match="within 10 s"):
        argocd.wait(fetch, DIGEST, 10, 6, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert polls == [0.0, 6.0, 12.0]


@pytest.fixture
def fake_argocd() -> Iterator[tuple[str, list[dict[str, Any]], list[str]]]:
    """An HTTP server answering GET /api/v1/applications/<name> from a list of documents, recording the tokens."""
    answers: list[dict[str, Any]] = []
    tokens: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            tokens.append(self.headers.get("Authorization", ""))
            if not self.path.startswith("/api/v1/applications/conveyor-staging"):
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps(answers.pop(0) if len(answers) > 1 else answers[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", answers, tokens
    finally:
        server.shutdown()
        server.server_close()


def test_argocd_wait_polls_the_api_until_the_new_image_is_healthy(fake_argocd, monkeypatch) -> None:
    url, answers, tokens = fake_argocd
    image = f"ghcr.io/o/conveyor:3-0123456@{DIGEST}"
    answers += [app("Progressing", "Synced", []), app("Healthy", "Synced", [image])]
    monkeypatch.setenv(argocd.SERVER_ENV, url)
    monkeypatch.setenv(argocd.TOKEN_ENV, "t0ken")
    server = argocd.Server.from_env()
    last = argocd.wait(lambda: server.application("conveyor-staging"), DIGEST, 30, 0.01)
    assert "health Healthy" in last and tokens == ["Bearer t0ken", "Bearer t0ken"]
    with pytest.raises(ConveyorError, match="HTTP 404"):
        server.application("conveyor-other")


def test_argocd_server_needs_both_variables(monkeypatch) -> None:
    monkeypatch.setenv(argocd.SERVER_ENV, "argocd.example.com")
    monkeypatch.delenv(argocd.TOKEN_ENV, raising=False)
    with pytest.raises(ConveyorError, match="ARGOCD_AUTH_TOKEN not set"):
        argocd.Server.from_env()
    monkeypatch.setenv(argocd.TOKEN_ENV, "t")
    assert argocd.Server.from_env().url == "https://argocd.example.com"


def test_a_verdict_from_an_earlier_run_never_stands_for_a_run_stopped_at_quality(tmp_path: Path, monkeypatch) -> None:
    """The earlier run passed; this one stopped at quality. Running the quality check removes the old verdict,
    and gate-outputs name the stage that stopped the run and why."""
    from conveyor.checks import cli as checks_cli

    monkeypatch.chdir(tmp_path)
    Path("artifacts").mkdir()
    Path("artifacts/train.json").write_text("{}")
    os.utime("artifacts/train.json", (1, 1))
    reports = Path("reports")
    for check in ("quality", "drift", "evaluate", "fairness", "latency"):
        CheckResult.from_failures(check, []).write(reports)
    (reports / "quality").mkdir()
    (reports / "quality" / "page.html").write_text("old")
    CheckResult.from_failures("quality", [], artifacts=["reports/quality/page.html"]).write(reports)
    write_gate(reports, True, "1")
    assert github.gate_outputs(reports, tmp_path / "none.json", None, None, None)["passed"] == "true"

    checks_cli.clear_previous("quality")
    assert sorted(p.name for p in reports.iterdir()) == [
        "drift.json",
        "evaluate.json",
        "fairness.json",
        "latency.json",
        "quality",
    ]
    assert not (reports / "quality" / "page.html").exists()
    os.utime(reports / "drift.json", (0, 0))  # drift ran in the earlier run, not this one
    CheckResult.from_failures("quality", ["row count = 10 < 1000"]).write(reports)

    outputs = github.gate_outputs(reports, tmp_path / "none.json", None, "ghcr.io", "org")
    assert outputs == {"passed": "false", "model-version": "", "run-id": "", "stopped-at": "quality"}
    verdict, table = github.gate_report(reports)
    assert table.startswith("### ❌ Conveyor run stopped at quality: the gate did not judge it, nothing registered")
    assert "| ❌ fail | quality | **row count = 10 < 1000** |" in table and "passed" not in table.splitlines()[0]
    assert verdict["checks"] == dict.fromkeys(CHECKS, False)
    assert "drift: drift did not run: the run stopped at quality" in verdict["failures"]


def test_a_gate_verdict_older_than_a_report_is_not_this_runs(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    write_gate(reports, True, "1")
    for check in ("quality", "drift", "evaluate", "fairness", "latency"):
        CheckResult.from_failures(check, []).write(reports)
    for name in ("gate.json", "gate.md"):
        os.utime(reports / name, (0, 0))  # a check ran by hand after the gate
    verdict, table = github.gate_report(reports)
    assert verdict["passed"] is False and verdict["stopped_at"] == "train"  # no artifacts/train.json here
    assert "stopped at train" in table


def test_conveyor_gate_explain_prints_the_stop_and_exits_1(tmp_path: Path, monkeypatch, capsys) -> None:
    from conveyor.cli import main

    monkeypatch.chdir(tmp_path)
    CheckResult.from_failures("quality", ["row count = 10 < 1000"]).write(Path("reports"))
    assert main(["gate", "--explain"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("run stopped at quality: the gate did not judge it") and "row count = 10 < 1000" in out
    assert "|" not in out and "gate: " not in out  # the terminal's plain form; explaining is no timed step


def test_a_missing_quality_report_stops_the_run_there_and_older_reports_do_not_count(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from conveyor.cli import main

    monkeypatch.chdir(tmp_path)
    CheckResult("drift", True).write(Path("reports"))  # left by an earlier run
    assert main(["gate", "--explain"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("run stopped at quality")
    assert "drift did not run: the run stopped at quality" in out
