"""`conveyor monitor`'s run on synthetic windows with real Evidently and fairlearn: a harmless window passes, a
drifted or degraded one fails naming what broke, too few rows or labels are not judged, the metrics parse as
Prometheus text with the contract's names, and no verdict of an earlier run survives a run that stops."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import roc_auc_score

from conveyor.checks.result import CheckResult
from conveyor.config import Settings, load_settings
from conveyor.errors import ConveyorError
from conveyor.monitor import assess, run, state
from tests.conftest import ROOT
from tests.unit.monitor import logs

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
ROWS = 2000
CONTRACT = {
    "conveyor_monitor_window_records",
    "conveyor_monitor_labelled_records",
    "conveyor_monitor_drift_share",
    "conveyor_monitor_drift_detected",
    "conveyor_monitor_feature_drift_score",
    "conveyor_monitor_feature_drifted",
    "conveyor_monitor_roc_auc",
    "conveyor_monitor_precision",
    "conveyor_monitor_recall",
    "conveyor_monitor_calibration_error",
    "conveyor_monitor_roc_auc_floor",
    "conveyor_monitor_score_shift",
    "conveyor_monitor_fairness",
    "conveyor_monitor_passed",
    "conveyor_monitor_consecutive_failed_windows",
    "conveyor_monitor_last_run_timestamp_seconds",
    "conveyor_deployed_model_info",
    "conveyor_monitor_roc_auc_difference_low",
    "conveyor_monitor_roc_auc_difference_high",
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """params.yaml and a synthetic training pool in tmp_path (the reference), the test inside it."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    settings = load_settings(tmp_path / "params.yaml")
    logs.training_csv(tmp_path / settings.data.path, settings, 3000, seed=0)
    return settings


def traffic(
    settings: Settings, folder: Path, rows: int = ROWS, labelled: int | None = None, seed: int = 1, **shift: float
) -> None:
    """One window of primary predictions ending an hour before NOW, `labelled` of them with feedback."""
    x = logs.synthetic(settings, rows, seed, shift)
    proba, predicted, actual = logs.scored(rows, seed)
    logs.write(folder, settings, x, proba, predicted, actual, start=NOW - timedelta(hours=2), prefix=f"s{seed}")
    if labelled is not None:  # drop the feedback beyond the first `labelled` rows
        path = folder / f"s{seed}-primary.jsonl"
        kept = [line for line in path.read_text().splitlines(keepends=True) if '"feedback"' not in line]
        kept += [line for line in path.read_text().splitlines(keepends=True) if '"feedback"' in line][:labelled]
        path.write_text("".join(kept))


def monitor(settings: Settings, folder: Path, **options: Any) -> run.Outcome:
    return run.run(settings, run.Options(log=folder, window="3h", **options), now=NOW)


def families(reports: Path = Path("reports")) -> dict[str, Any]:
    text = (reports / "monitor.prom").read_text()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(found: dict[str, Any], name: str, **labels: str) -> float:
    (sample,) = [s for s in found[name].samples if s.labels == labels]
    return sample.value


def test_a_window_like_the_training_data_passes_and_its_metrics_keep_the_contract(project: Settings, tmp_path) -> None:
    traffic(project, tmp_path / "log")
    outcome = monitor(project, tmp_path / "log", environment="staging", deployed_version="7")
    result = CheckResult.read(Path("reports/monitor.json"))
    assert result.passed and result.failures == [] and result.metrics["judged"], result.failures
    assert result.metrics["drift"]["drifted"] == [] and result.metrics["performance"]["primary"]["roc_auc"] > 0.9
    assert set(result.metrics["fairness"]["features"]) == {"sex", "race"}
    assert outcome.state.consecutive_failed == 0 and outcome.dispatched is None

    found = families()
    assert set(found) <= CONTRACT
    assert value(found, "conveyor_monitor_passed") == 1
    assert value(found, "conveyor_monitor_window_records", role="primary") == ROWS
    assert value(found, "conveyor_monitor_labelled_records", role="shadow") == 0
    assert value(found, "conveyor_monitor_roc_auc_floor") == project.gates.evaluate.roc_auc.min
    assert value(found, "conveyor_monitor_drift_detected") == 0
    assert value(found, "conveyor_monitor_feature_drifted", feature="age") == 0
    assert value(found, "conveyor_monitor_fairness", feature="sex", metric="equalized_odds_difference") < 0.1
    assert value(found, "conveyor_deployed_model_info", environment="staging", version="7") == 1
    assert "conveyor_monitor_score_shift" not in found  # no bundle given: not judged, so absent, not 0
    page = Path("reports/monitor.html").read_text()
    assert "passed" in page and "http" not in page.replace("<!doctype html>", "")


def test_a_drifted_window_fails_naming_the_feature(project: Settings, tmp_path) -> None:
    traffic(project, tmp_path / "log", age=40)
    result = monitor(project, tmp_path / "log").result
    assert not result.passed and result.metrics["failing"] == ["drift"]
    assert any(f.startswith("drift score (age) = ") for f in result.failures), result.failures
    found = families()
    assert value(found, "conveyor_monitor_passed") == 0
    assert value(found, "conveyor_monitor_drift_detected") == 1
    assert value(found, "conveyor_monitor_feature_drifted", feature="age") == 1
    assert value(found, "conveyor_monitor_consecutive_failed_windows") == 1


def test_a_model_that_lost_its_skill_fails_the_gates_roc_auc_floor(project: Settings, tmp_path) -> None:
    x = logs.synthetic(project, ROWS, 1)
    proba, predicted, actual = logs.scored(ROWS, 1)
    logs.write(tmp_path / "log", project, x, proba, predicted, 1 - actual, start=NOW - timedelta(hours=2))  # flipped
    result = monitor(project, tmp_path / "log").result
    assert "performance" in result.metrics["failing"] and "drift" not in result.metrics["failing"]
    assert any(f.startswith("ROC AUC = 0.0") and f.endswith("< 0.88") for f in result.failures), result.failures


def test_too_few_records_is_not_judged_and_leaves_the_count(project: Settings, tmp_path) -> None:
    folder = tmp_path / "log"
    state.save(folder / state.STATE_FILE, state.State(2, "1", "before", None))
    traffic(project, folder, rows=50)
    outcome = monitor(project, folder)
    result = outcome.result
    assert result.metrics["judged"] is False and result.judgements == []
    assert result.warnings[0].startswith("not judged: too few records in the window")
    assert any("50 primary predictions in the window, below monitor.min_records 200" in w for w in result.warnings)
    assert outcome.state.consecutive_failed == 2  # neither a pass nor a failure
    found = families()
    assert "conveyor_monitor_passed" not in found and "conveyor_monitor_drift_share" not in found
    assert value(found, "conveyor_monitor_consecutive_failed_windows") == 2


def test_too_few_labels_judges_drift_only(project: Settings, tmp_path) -> None:
    traffic(project, tmp_path / "log", labelled=50)
    result = monitor(project, tmp_path / "log").result
    assert result.metrics["judged"] and result.metrics["drift"]["judged"]
    assert result.metrics["performance"]["primary"]["judged"] is False
    assert any("50 labelled primary predictions, below monitor.min_labelled 200" in w for w in result.warnings)
    found = families()
    assert not found["conveyor_monitor_roc_auc"].samples and "conveyor_monitor_fairness" not in found


def test_a_run_that_stops_leaves_no_earlier_verdict(project: Settings, tmp_path) -> None:
    traffic(project, tmp_path / "log")
    monitor(project, tmp_path / "log")
    assert Path("reports/monitor.json").exists()
    with pytest.raises(ConveyorError, match="is not a folder"):
        monitor(project, tmp_path / "missing")
    assert not any(Path("reports").glob("monitor.*"))


def test_the_third_failed_window_prints_the_dispatch_on_a_dry_run(
    project: Settings, tmp_path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_never_shown")
    folder = tmp_path / "log"
    state.save(folder / state.STATE_FILE, state.State(2, "1", "before", None))
    traffic(project, folder, age=40)
    outcome = monitor(project, folder, dry_run=True)
    out = capsys.readouterr().out
    assert outcome.dispatched is not None and '"event_type": "conveyor-retrain"' in out
    assert "ghs_never_shown" not in out and '"failing_checks": [\n      "drift"\n    ]' in out
    assert outcome.state.dispatched_at is None  # a dry run starts no cooldown
    assert outcome.result.metrics["retrain"]["dry_run"] is True


def test_the_shadow_gets_the_same_metrics_and_an_interval_on_the_difference(project: Settings, tmp_path) -> None:
    folder = tmp_path / "log"
    traffic(project, folder)
    x = logs.synthetic(project, ROWS, 1)
    proba, _, _ = logs.scored(ROWS, 1)
    noisy = np.clip(proba + np.random.default_rng(5).normal(0, 0.3, ROWS), 0, 1)  # a worse challenger
    logs.write(
        folder,
        project,
        x,
        noisy,
        (noisy >= 0.5).astype(int),
        None,
        start=NOW - timedelta(hours=2),
        role="shadow",
        prefix="s1",
    )
    result = monitor(project, folder).result
    challenger = result.metrics["challenger"]
    assert challenger["pairs"] == ROWS and challenger["low"] <= challenger["roc_auc_difference"] <= challenger["high"]
    assert challenger["high"] < 0  # clearly worse, and the interval says so
    assert result.metrics["performance"]["shadow"]["roc_auc"] < result.metrics["performance"]["primary"]["roc_auc"]
    found = families()
    assert value(found, "conveyor_monitor_roc_auc_difference_low") == challenger["low"]
    assert value(found, "conveyor_monitor_roc_auc", role="shadow") == result.metrics["performance"]["shadow"]["roc_auc"]


def test_the_bootstrap_is_repeatable_and_centred_on_an_identical_challenger() -> None:
    proba, _, actual = logs.scored(500, 3)
    assert assess.bootstrap_difference(actual, proba, proba, 200, 0.95, 1) == (0.0, 0.0, 0.0)
    other = np.clip(proba + np.random.default_rng(0).normal(0, 0.1, 500), 0, 1)
    first = assess.bootstrap_difference(actual, proba, other, 200, 0.95, 1)
    assert first == assess.bootstrap_difference(actual, proba, other, 200, 0.95, 1)
    assert assess.auc(actual, proba) == pytest.approx(roc_auc_score(actual, proba))


def test_psi_and_calibration_error_separate_harmless_from_shifted() -> None:
    rng = np.random.default_rng(0)
    reference = rng.beta(2, 5, 5000)
    assert assess.psi(reference, rng.permutation(reference)[:2000], 10) < 0.02  # shuffled rows: stable
    assert assess.psi(reference, rng.beta(5, 2, 2000), 10) > 1  # the scores moved
    proba, _, actual = logs.scored(5000, 4)
    assert assess.calibration_error(actual, proba, 10) < 0.03
    assert assess.calibration_error(actual, np.clip(proba + 0.3, 0, 1), 10) > 0.2


def test_a_bad_monitor_setting_is_refused_with_its_field(tmp_path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["monitor"]["cooldown"] = "a day"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConveyorError, match=r"monitor\.cooldown = 'a day' is invalid"):
        load_settings(tmp_path / "params.yaml")


def test_a_refused_dispatch_still_writes_the_verdict_and_keeps_the_count(
    project: Settings, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    folder = tmp_path / "log"
    state.save(folder / state.STATE_FILE, state.State(2, "1", "before", None))
    traffic(project, folder, age=40)
    with pytest.raises(ConveyorError, match=r"\$GITHUB_TOKEN is not set"):
        monitor(project, folder)
    result = CheckResult.read(Path("reports/monitor.json"))
    assert not result.passed and result.metrics["retrain"]["due"] and not result.metrics["retrain"]["dispatched"]
    assert "GITHUB_TOKEN" in result.metrics["retrain"]["error"]
    assert value(families(), "conveyor_monitor_consecutive_failed_windows") == 3
    assert state.load(folder / state.STATE_FILE).consecutive_failed == 3  # the next run tries again


def test_the_metrics_are_put_to_the_pushgateway_under_the_monitors_job(project: Settings, tmp_path) -> None:
    seen: list[tuple[str, str, bytes]] = []

    class Pushgateway(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            seen.append((self.command, self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Pushgateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        traffic(project, tmp_path / "log")
        monitor(project, tmp_path / "log", push_gateway=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    ((method, path, body),) = seen
    assert (method, path) == ("PUT", "/metrics/job/conveyor-monitor")
    pushed = {family.name for family in text_string_to_metric_families(body.decode())}
    assert pushed == set(families()) and "conveyor_monitor_passed" in pushed


def test_an_unreachable_pushgateway_is_one_sentence_after_the_files_are_written(project: Settings, tmp_path) -> None:
    traffic(project, tmp_path / "log")
    with pytest.raises(ConveyorError, match=r"--push-gateway = 'http://127\.0\.0\.1:9': the push failed"):
        monitor(project, tmp_path / "log", push_gateway="http://127.0.0.1:9")
    assert CheckResult.read(Path("reports/monitor.json")).passed


def test_a_model_that_turns_one_group_down_fails_fairness_by_that_feature(project: Settings, tmp_path) -> None:
    x = logs.synthetic(project, ROWS, 1)
    proba, _, actual = logs.scored(ROWS, 1)
    female = (x["sex"] == "Female").to_numpy()
    proba = np.where(female, proba / 3, proba)  # the same people, a third of the score when female
    logs.write(tmp_path / "log", project, x, proba, (proba >= 0.5).astype(int), actual, start=NOW - timedelta(hours=2))
    result = monitor(project, tmp_path / "log").result
    assert "fairness" in result.metrics["failing"]
    assert any(f.startswith("equalized-odds difference (sex) = ") for f in result.failures), result.failures
    assert not any("(race)" in f for f in result.failures)  # race was left alone
    found = families()
    assert value(found, "conveyor_monitor_fairness", feature="sex", metric="equalized_odds_difference") > 0.1
