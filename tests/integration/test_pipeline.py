"""The whole pipeline on the real data, and one failing case per gate.

Every failing case runs the real steps and then asserts that nothing was registered in MLflow and nothing
was exported to models/ (the image build's input)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, Project

pytestmark = [pytest.mark.integration, pytest.mark.slow]
STEPS = [stage["cmd"].split()[1:] for stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values()]


def run_pipeline(project: Project) -> list[str]:
    """The dvc.yaml stages in order, as `conveyor <step>` calls; returns the steps that exited non-zero."""
    failed = []
    for step in STEPS:
        if project.run(*step, check=False).returncode != 0:
            failed.append(step[0])
    return failed


def registered_versions(project: Project) -> list[str]:
    client = MlflowClient(tracking_uri=project.env["MLFLOW_TRACKING_URI"])
    return [
        v.version for m in client.search_registered_models() for v in client.search_model_versions(f"name='{m.name}'")
    ]


def gate_report(project: Project) -> dict:
    return json.loads((project.root / "reports" / "gate.json").read_text())


def assert_nothing_shipped(project: Project) -> None:
    assert registered_versions(project) == []
    assert not (project.root / "models").exists()


def test_dvc_repro_end_to_end_then_noop_metrics_and_remote(make_project) -> None:
    project = make_project()
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "add", "-q", "data"]):
        project.sh(*cmd)
    repro = project.sh("dvc", "repro", check=False)
    assert repro.returncode == 0, repro.stderr + repro.stdout

    report = gate_report(project)
    assert report["passed"] and report["model_version"] == "1"
    metadata = json.loads((project.root / "models" / "metadata.json").read_text())
    assert metadata["version"] == "1" and metadata["data_version"].endswith(".dir")
    client = MlflowClient(tracking_uri=project.env["MLFLOW_TRACKING_URI"])
    assert client.get_model_version_by_alias(project.settings.model.name, "candidate").version == "1"
    assert "| evaluate | ✅ pass |" in (project.root / "reports" / "gate.md").read_text()

    noop = project.sh("dvc", "repro")
    assert "Data and pipelines are up to date" in noop.stdout
    assert registered_versions(project) == ["1"]

    project.sh("git", "add", "-A")
    project.sh("git", "commit", "-qm", "baseline")
    project.write_params({"model": {"params": {"max_iter": 60}}})
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
def test_corrupted_data_stops_dvc_repro_before_training(make_project, corrupt) -> None:
    project = make_project()
    settings = project.settings
    path = project.root / settings.data.path
    corrupt(pd.read_csv(path, dtype=str, keep_default_na=False).pipe(_numeric, settings), settings).to_csv(
        path, index=False
    )
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "add", "-q", "data"]):
        project.sh(*cmd)
    repro = project.sh("dvc", "repro", check=False)
    assert repro.returncode != 0
    quality = json.loads((project.root / "reports" / "quality.json").read_text())
    assert not quality["passed"] and quality["failures"]
    assert not (project.root / "artifacts" / "train.json").exists()
    assert_nothing_shipped(project)


def _numeric(frame: pd.DataFrame, settings) -> pd.DataFrame:
    return frame.assign(**{n: pd.to_numeric(frame[n]) for n in settings.data.numeric})


def test_shuffled_labels_fail_evaluation(make_project) -> None:
    project = make_project()
    settings = project.settings
    path = project.root / settings.data.path
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame[settings.data.target] = frame[settings.data.target].sample(frac=1, random_state=0).to_numpy()
    frame.to_csv(path, index=False)
    assert run_pipeline(project) == ["gate"]
    failures = gate_report(project)["failures"]
    assert any(f.startswith("evaluate: roc_auc = ") for f in failures)
    assert_nothing_shipped(project)


def test_biased_decision_fails_fairness(make_project) -> None:
    """A decision policy that demands far more of one group's members than of the others'."""
    project = make_project()
    feature = project.settings.data.sensitive_features[0]
    group = project.settings.data.features[feature].values[0]
    for step in STEPS[:3]:
        project.run(*step)
    decision_path = project.root / "artifacts" / "model" / "decision.json"
    decision = json.loads(decision_path.read_text())
    decision.update(group_feature=feature, group_thresholds={group: 0.97})
    decision_path.write_text(json.dumps(decision))
    assert run_pipeline_from(project, "evaluate") == ["gate"]
    failures = gate_report(project)["failures"]
    assert any(f.startswith(f"fairness: equalized_odds_difference[{feature}]") for f in failures), failures
    assert_nothing_shipped(project)


def run_pipeline_from(project: Project, first: str) -> list[str]:
    names = [s[0] for s in STEPS]
    failed = []
    for step in STEPS[names.index(first) :]:
        if project.run(*step, check=False).returncode != 0:
            failed.append(step[0])
    return failed


def test_slow_model_fails_latency(make_project) -> None:
    trusted = [
        *yaml.safe_load((ROOT / "params.yaml").read_text())["model"]["trusted_types"],
        "tests.support.slow.SlowClassifier",
    ]
    project = make_project({"model": {"estimator": "tests.support.slow.SlowClassifier", "trusted_types": trusted}})
    assert run_pipeline(project) == ["gate"]
    failures = gate_report(project)["failures"]
    assert any(f.startswith("latency: single_p99_ms = ") for f in failures), failures
    assert_nothing_shipped(project)


def test_worse_challenger_fails_against_champion_on_a_real_server(make_project, mlflow_server) -> None:
    """Registration, aliases and the champion download all go through a real `mlflow server`."""
    project = make_project(tracking_uri=mlflow_server)
    assert run_pipeline(project) == []
    client = MlflowClient(tracking_uri=project.env["MLFLOW_TRACKING_URI"])
    name = project.settings.model.name
    client.set_registered_model_alias(name, "champion", "1")
    project.write_params({"model": {"params": {"max_iter": 3, "learning_rate": 0.05}}})
    assert (project.root / "models").exists()
    assert run_pipeline(project) == ["gate"]
    failures = gate_report(project)["failures"]
    assert any("< champion v1" in f for f in failures), failures
    assert registered_versions(project) == ["1"]
    assert not (project.root / "models").exists()


def test_drifted_batch_fails_drift(make_project) -> None:
    project = make_project()
    project.run("data", "ingest")
    settings = project.settings
    batch = sorted((project.root / settings.data.batches_dir).glob("batch-*.csv"))[-1]
    frame = pd.read_csv(batch, dtype=str, keep_default_na=False)
    for name in settings.data.numeric[:4]:
        feature = settings.data.features[name]
        frame[name] = str(int(feature.max))
    for name in settings.data.categorical[:4]:
        frame[name] = settings.data.features[name].values[0]
    frame.to_csv(batch, index=False)
    failed = run_pipeline(project)
    assert failed == ["gate"], failed
    failures = gate_report(project)["failures"]
    assert any(f.startswith("drift: ") for f in failures), failures
    assert_nothing_shipped(project)
