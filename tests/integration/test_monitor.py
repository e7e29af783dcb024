"""`conveyor monitor` end to end, as real subprocesses on a copy of the session's pipeline run: a real
`conveyor serve` of the demo bundle logs every request; the holdout sent as traffic, with its true labels posted
to /v1/feedback, passes; the same rows with age + 20 years (capped at 90) fail naming age; once
monitor.failed_windows windows have failed, the `conveyor-retrain` dispatch reaches a local HTTP server standing in
for GitHub's API. And `conveyor monitor collect`, a real server, takes CloudEvents batches that
predictionlog.read reads back."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from conveyor import predictionlog
from conveyor.checks import holdout
from conveyor.checks.result import CheckResult
from conveyor.monitor import state
from tests.conftest import CONVEYOR, Project, copy_project, free_port, wait_for
from tests.support import served
from tests.support.github import Recorder

pytestmark = pytest.mark.integration


@pytest.fixture
def project(pipeline_run: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    copied = copy_project(pipeline_run, tmp_path / "project")
    copied.write_params({"monitor": {"failed_windows": 2, "repository": "conveyor-org/conveyor"}})
    monkeypatch.chdir(copied.root)  # the holdout's data paths are relative to the project
    return copied


def monitor(project: Project, api: str, since: datetime, until: datetime) -> subprocess.CompletedProcess[str]:
    args = ["monitor", "--log", "log", "--since", since.isoformat(), "--until", until.isoformat(), "--github-api", api]
    return subprocess.run(
        [CONVEYOR, *args],
        cwd=project.root,
        env=project.env | {"GITHUB_TOKEN": "ghs_integration"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_clean_traffic_passes_drifted_traffic_fails_and_the_retrain_is_dispatched(
    project: Project, github: str
) -> None:
    settings = project.settings
    clean = holdout.score(settings, project.root / "models")
    labels = [settings.data.positive_label if y else settings.serve.prediction_log.negative_label for y in clean.y]
    older = clean.x.assign(age=np.minimum(clean.x["age"] + 20, 90))
    server, base = served.serve(
        project.root / "models", project.root, {"sample": 1.0}, {"PREDICTION_LOG_DIR": str(project.root / "log")},
        params=project.root,
    )  # fmt: skip
    try:
        start = datetime.now(UTC)
        probabilities = served.replay(base, clean.x, labels, "clean")
        middle = datetime.now(UTC)
        served.replay(base, older, labels, "older")
        end = datetime.now(UTC) + timedelta(seconds=1)
    finally:
        served.stop(server)  # the log's writer drains before the process ends
    assert np.array_equal(np.array(probabilities), clean.proba)  # what was served is what the gate measured

    passed = monitor(project, github, start, middle)
    assert passed.returncode == 0, passed.stderr
    assert passed.stdout.startswith("monitor: passed"), passed.stdout + passed.stderr
    result = CheckResult.read(project.root / "reports" / "monitor.json")
    assert result.passed and result.metrics["records"]["primary"] == len(clean.y)
    assert result.metrics["labelled"]["primary"] == len(clean.y) and result.metrics["drift"]["drifted"] == []
    assert result.metrics["score_shift"]["psi"] < 0.01  # the same rows the reference scores came from
    assert result.metrics["performance"]["primary"]["roc_auc"] >= settings.gates.evaluate.roc_auc.min

    failed = monitor(project, github, middle, end)
    assert failed.returncode == 1 and failed.stdout.startswith("monitor: FAILED"), failed.stdout + failed.stderr
    assert "drift score (age) = " in failed.stderr
    result = CheckResult.read(project.root / "reports" / "monitor.json")
    assert "age" in result.metrics["drift"]["drifted"] and "drift" in result.metrics["failing"]
    assert result.metrics["score_shift"]["psi"] > settings.monitor.score_shift.max  # older people score higher
    prom = (project.root / "reports" / "monitor.prom").read_text()
    assert 'conveyor_monitor_feature_drifted{feature="age"} 1.0' in prom and "conveyor_monitor_passed 0.0" in prom
    assert Recorder.seen == []  # one failed window: not yet

    again = monitor(project, github, middle, end)
    assert again.returncode == 1 and "sent the conveyor-retrain dispatch" in again.stdout, again.stdout + again.stderr
    (sent,) = Recorder.seen
    assert sent["path"] == "/repos/conveyor-org/conveyor/dispatches"
    assert sent["headers"]["Authorization"] == "Bearer ghs_integration"
    assert "ghs_integration" not in again.stdout + again.stderr
    assert sent["body"]["event_type"] == "conveyor-retrain"
    payload = sent["body"]["client_payload"]
    assert payload["model_version"] == "1" and payload["consecutive_failed_windows"] == 2
    assert "drift" in payload["failing_checks"] and any("(age)" in f for f in payload["failures"])
    assert payload["window"].startswith(middle.isoformat(timespec="seconds").replace("+00:00", "Z"))
    saved = state.load(project.root / "log" / state.STATE_FILE)
    assert saved.consecutive_failed == 0 and saved.dispatched_at is not None

    cooling = monitor(project, github, middle, end)  # fails again: counted, but no second dispatch
    assert cooling.returncode == 1 and len(Recorder.seen) == 1


def test_the_collector_takes_cloudevents_that_the_monitor_reads_back(tmp_path: Path) -> None:
    port = free_port()
    folder = tmp_path / "log"
    server = subprocess.Popen(
        [CONVEYOR, "monitor", "collect", "--dir", str(folder), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", timeout=30)
        records = [
            predictionlog.Prediction(f"r{n}", predictionlog.now(), "1", "primary", {"age": 30 + n}, 0.1 * n, "<=50K")
            for n in range(5)
        ] + [predictionlog.Feedback("r1", predictionlog.now(), ">50K")]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/",
            data=predictionlog.to_cloudevents(records, source="test", model="conveyor"),
            headers={"Content-Type": predictionlog.CLOUDEVENTS_BATCH},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and json.loads(response.read()) == {"stored": 6}
        assert list(predictionlog.read(folder)) == records
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
