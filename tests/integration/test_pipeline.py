"""The whole pipeline on the real data, and one failing case per gate.

The whole pipeline runs once per session (`pipeline_run` in tests/conftest.py: `dvc repro` against a real MLflow
server). Every other case starts from a copy of it and re-runs only the stages its change reaches, with the real
stage commands and the real gate on real reports; every failing case then asserts that nothing was registered in
MLflow and nothing was exported to models/ (the image build's input)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, Project, copy_project, registered_versions

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STEPS = [stage["cmd"].split()[1:] for stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values()]


def gate_report(project: Project) -> dict:
    return json.loads((project.root / "reports" / "gate.json").read_text())


def test_dvc_repro_end_to_end_then_noop_metrics_and_remote(
    pipeline_run: Project, tmp_path: Path, own_model_name: str
) -> None:
    report = gate_report(pipeline_run)
    assert report["passed"] and report["model_version"] == "1"
    metadata = json.loads((pipeline_run.root / "models" / "metadata.json").read_text())
    assert metadata["version"] == "1" and metadata["data_version"].endswith(".dir")
    client = MlflowClient(tracking_uri=pipeline_run.env["MLFLOW_TRACKING_URI"])
    assert str(client.get_model_version_by_alias(pipeline_run.settings.model.name, "candidate").version) == "1"
    table = (pipeline_run.root / "reports" / "gate.md").read_text()
    assert "| ✅ pass | evaluate | ROC AUC |" in table and "❌" not in table
    assert "| ✅ pass | latency | single-record p99 |" in table and " ms |" in table  # value, limit, margin in ms

    project = copy_project(pipeline_run, tmp_path / "project")
    noop = project.sh("dvc", "repro")  # only latency runs again (always_changed: a measurement is never restored)
    assert "Running stage 'latency'" in noop.stdout and "Running stage 'train'" not in noop.stdout
    assert "Stage 'gate' didn't change" in noop.stdout
    explained = project.run("gate", "--explain")  # the verdict still stands for this run: make run prints it
    assert explained.stdout.startswith("gate passed: 6 checks\n"), explained.stdout[:300]
    assert registered_versions(project) == ["1"]

    project.sh("git", "add", "-A")
    project.sh("git", "commit", "-qm", "baseline")
    # Its own model name: the version this passing re-run registers must not show up in the other tests' registry.
    project.write_params({"model": {"name": own_model_name, "params": {"max_iter": 60}}})
    assert project.sh("dvc", "repro", check=False).returncode == 0
    diff = project.sh("dvc", "metrics", "diff", "--json").stdout
    assert "evaluate.json" in diff and "roc_auc" in diff
    plots = project.sh("dvc", "plots", "diff", "-o", "plots-html")
    assert (project.root / "plots-html" / "index.html").exists(), plots.stdout

    remote = project.root.parent / "remote"
    project.sh("dvc", "remote", "add", "-d", "local", str(remote))
    project.sh("dvc", "push", "-q")
    project.sh("rm", "-rf", "data", ".dvc/cache")
    project.sh("dvc", "pull", "-q")
    assert "up to date" in project.sh("dvc", "status", "data.dvc").stdout


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda f, s: f.drop(columns=[s.data.numeric[0]]), id="missing-column"),
        pytest.param(lambda f, s: f.assign(**{s.data.numeric[0]: f[s.data.numeric[0]] * 10}), id="out-of-range"),
    ],
)
def test_corrupted_data_stops_dvc_repro_before_training(
    pipeline_run: Project, tmp_path: Path, own_model_name: str, corrupt
) -> None:
    """From the pipeline run's git repository and DVC cache, without its outputs (as a fresh clone has them)."""
    project = copy_project(pipeline_run, tmp_path / "project", own_model_name)
    project.sh("rm", "-rf", "reports", "artifacts", "models")
    settings = project.settings
    path = project.root / settings.data.path
    corrupt(pd.read_csv(path, dtype=str, keep_default_na=False).pipe(_numeric, settings), settings).to_csv(
        path, index=False
    )
    project.sh("dvc", "add", "-q", "data")  # the corrupted data is the new version of the dataset
    repro = project.sh("dvc", "repro", check=False)
    assert repro.returncode != 0
    quality = json.loads((project.root / "reports" / "quality.json").read_text())
    assert not quality["passed"] and quality["failures"]
    assert not (project.root / "artifacts" / "train.json").exists()
    assert registered_versions(project) == []
    assert not (project.root / "models").exists()


def _numeric(frame: pd.DataFrame, settings) -> pd.DataFrame:
    return frame.assign(**{n: pd.to_numeric(frame[n]) for n in settings.data.numeric})


@pytest.fixture
def copy_of_passed(pipeline_run: Project, tmp_path: Path) -> Project:
    """A copy of the session's pipeline run, which passed the gate: version 1 registered, models/ exported.

    Each failing case below changes one thing in it, re-runs the steps that change touches (as `dvc repro` would)
    and the gate, and checks that no new version appears and that the earlier export is removed. None of them
    registers anything, so they share the run's model name (and its version 1) on the MLflow server."""
    assert registered_versions(pipeline_run) == ["1"] and (pipeline_run.root / "models").exists()
    return copy_project(pipeline_run, tmp_path / "project")


def run_steps(project: Project, *names: str) -> list[str]:
    """The named dvc.yaml stages (all of them when none are named) in dvc.yaml order, as `conveyor <step>`
    calls; returns the steps that exited non-zero."""
    chosen = [s for s in STEPS if not names or s[0] in names]
    return [step[0] for step in chosen if project.run(*step, check=False).returncode != 0]


def assert_blocked(project: Project, check: str, failure_start: str) -> None:
    failures = gate_report(project)["failures"]
    assert any(f.startswith(f"{check}: {failure_start}") for f in failures), failures
    assert not gate_report(project)["passed"]
    assert registered_versions(project) == ["1"]
    assert not (project.root / "models").exists()


def test_shuffled_labels_fail_evaluation(copy_of_passed: Project) -> None:
    project = copy_of_passed
    settings = project.settings
    path = project.root / settings.data.path
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame[settings.data.target] = frame[settings.data.target].sample(frac=1, random_state=0).to_numpy()
    frame.to_csv(path, index=False)
    assert run_steps(project, "quality", "train", "evaluate", "gate") == ["gate"]
    assert_blocked(project, "evaluate", "ROC AUC = ")


def test_biased_decision_fails_fairness(copy_of_passed: Project) -> None:
    """A decision policy that demands far more of one group's members than of the others'."""
    project = copy_of_passed
    feature = project.settings.data.sensitive_features[0]
    group = project.settings.data.features[feature].values[0]
    decision_path = project.root / "artifacts" / "model" / "decision.json"
    decision = json.loads(decision_path.read_text())
    decision.update(group_feature=feature, group_thresholds={group: 0.97})
    decision_path.write_text(json.dumps(decision))
    assert run_steps(project, "fairness", "gate") == ["gate"]
    assert_blocked(project, "fairness", f"equalized-odds difference ({feature}) = ")


def test_slow_model_fails_latency(copy_of_passed: Project) -> None:
    project = copy_of_passed
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    params["model"] |= {
        "estimator": "tests.support.slow.SlowClassifier",
        "params": {"max_iter": 500},
        "trusted_types": [*params["model"]["trusted_types"], "numpy.dtype", "tests.support.slow.SlowClassifier"],
    }
    (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert run_steps(project, "train", "latency", "gate") == ["gate"]
    assert_blocked(project, "latency", "single-record p99 = ")


def test_a_failed_training_run_leaves_nothing_for_the_gate(copy_of_passed: Project) -> None:
    """A train that fails must not let the gate register the previous run's model."""
    project = copy_of_passed
    project.write_params({"model": {"params": {"no_such_parameter": 1}}})
    assert run_steps(project, "train", "gate") == ["train", "gate"]
    assert not (project.root / "artifacts" / "train.json").exists()
    assert registered_versions(project) == ["1"]


def test_drifted_batch_fails_drift(copy_of_passed: Project) -> None:
    project = copy_of_passed
    project.run("data", "ingest")
    settings = project.settings
    batch = sorted((project.root / settings.data.batches_dir).glob("batch-*.csv"))[-1]
    frame = pd.read_csv(batch, dtype=str, keep_default_na=False)
    for name in settings.data.numeric[:4]:
        frame[name] = str(int(settings.data.features[name].max))
    for name in settings.data.categorical[:4]:
        frame[name] = settings.data.features[name].values[0]
    frame.to_csv(batch, index=False)
    assert run_steps(project, "quality", "drift", "gate") == ["gate"]
    assert_blocked(project, "drift", "drifted columns share = ")


def test_worse_challenger_fails_against_champion_on_a_real_server(
    pipeline_run: Project, tmp_path: Path, own_model_name: str
) -> None:
    """Registration, aliases and the champion download all go through a real `mlflow server`.

    The copy's gate registers the pipeline run's passed model under this test's own name (version 1, `candidate`);
    that version becomes champion, and a weaker retrain must lose to it."""
    project = copy_project(pipeline_run, tmp_path / "project", own_model_name)
    assert project.tracking_uri == pipeline_run.tracking_uri and project.tracking_uri.startswith("http://")
    assert run_steps(project, "gate") == []
    client = MlflowClient(tracking_uri=project.tracking_uri)
    name = project.settings.model.name
    assert str(client.get_model_version_by_alias(name, "candidate").version) == "1"
    client.set_registered_model_alias(name, "champion", "1")
    project.write_params({"model": {"params": {"max_iter": 3, "learning_rate": 0.05}}})
    assert run_steps(project, "train", "evaluate", "gate") == ["gate"]
    evaluation = json.loads((project.root / "reports" / "evaluate.json").read_text())
    assert evaluation["metrics"]["champion"]["version"] == "1"
    assert_blocked(project, "evaluate", "ROC AUC against champion v1 = ")
