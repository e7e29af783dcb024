"""Gates that must neither flake nor miss, on the real data through the real steps (issue 10).

The session's one `dvc repro` that passes (`pipeline_run`); each case starts from a copy of it, changes one thing and runs the steps it touches
and the gate. A case that must fail checks that nothing new was registered and models/ was removed; a harmless
change (the training rows shuffled) must leave the decision policy and the fairness report identical."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import Project, copy_project, registered_versions

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def report(project: Project, name: str) -> dict:
    return json.loads((project.root / "reports" / f"{name}.json").read_text())


@pytest.fixture
def copied(pipeline_run: Project, tmp_path: Path) -> Project:
    """A copy of the session's passed run (version 1 registered, models/ exported). The failing cases register
    nothing, so they share the run's model name; the harmless one, whose gate passes, takes its own."""
    return copy_project(pipeline_run, tmp_path / "project")


def run(project: Project, *steps: str) -> list[str]:
    """`conveyor <step>` for each step, in order; the steps that exited non-zero."""
    return [step for step in steps if project.run(step, check=False).returncode != 0]


def assert_blocked(project: Project, failure_start: str) -> None:
    gate = report(project, "gate")
    assert not gate["passed"]
    assert any(f.startswith(failure_start) for f in gate["failures"]), gate["failures"]
    assert registered_versions(project) == ["1"]
    assert not (project.root / "models").exists()


def test_dvc_repro_measures_latency_again_instead_of_restoring_a_result(copied: Project) -> None:
    """A failing latency report left from a busy moment is never restored nor kept: the stage runs every time,
    and a measurement that agrees with the verdict re-runs neither the gate nor the registration."""
    project = copied
    planted = report(project, "latency") | {"passed": False, "failures": ["planted: an earlier failing result"]}
    (project.root / "reports" / "latency.json").write_text(json.dumps(planted))
    repro = project.sh("dvc", "repro", check=False)
    assert repro.returncode == 0, repro.stderr + repro.stdout
    assert "Running stage 'latency'" in repro.stdout
    assert "is cached - skipping run" not in repro.stdout
    assert "Stage 'train' didn't change" in repro.stdout and "Stage 'gate' didn't change" in repro.stdout
    measured = report(project, "latency")
    assert measured["passed"] and measured["failures"] == []
    assert measured["metrics"]["single_cpu_p99_ms"] != planted["metrics"]["single_cpu_p99_ms"]
    assert registered_versions(project) == ["1"]


def test_shuffled_training_rows_give_the_identical_decision_and_fairness_report(
    copied: Project, own_model_name: str
) -> None:
    project = copied
    project.write_params({"model": {"name": own_model_name}})  # its gate passes: it registers apart from the run's
    decision = (project.root / "artifacts" / "model" / "decision.json").read_text()
    fairness = report(project, "fairness")
    path = project.root / project.settings.data.path
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.sample(frac=1.0, random_state=3).to_csv(path, index=False)
    assert run(project, "train", "evaluate", "fairness", "latency", "behaviour", "gate") == []
    assert (project.root / "artifacts" / "model" / "decision.json").read_text() == decision
    assert report(project, "fairness") == fairness
    assert report(project, "gate")["passed"]


def test_one_strongly_drifted_column_fails_drift_naming_it(copied: Project) -> None:
    """age + 20 years in a new batch: 1 of 13 columns, under the drifted share, still blocks."""
    project = copied
    project.run("data", "ingest")
    settings = project.settings
    batch = sorted((project.root / settings.data.batches_dir).glob("batch-*.csv"))[-1]
    frame = pd.read_csv(batch, dtype=str, keep_default_na=False)
    top = int(settings.data.features["age"].max)
    frame["age"] = (frame["age"].astype(int) + 20).clip(upper=top).astype(str)
    frame.to_csv(batch, index=False)
    assert run(project, "quality", "drift", "gate") == ["gate"]
    assert_blocked(project, "drift: drift score (age) = ")
    drift = report(project, "drift")
    assert drift["metrics"]["drifted_count"] == 1 and drift["metrics"]["judged"]
    assert "| ❌ fail | drift | **drift score (age)** |" in (project.root / "reports" / "gate.md").read_text()


def test_a_slow_model_fails_latency_saying_it_left_the_fast_path(copied: Project) -> None:
    """k-nearest neighbours are not compiled (RandomForest now is): served by the scikit-learn Pipeline, each record
    costs about 12 ms of CPU against every training row, far over the limit."""
    project = copied
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    params["model"] |= {
        "estimator": "sklearn.neighbors.KNeighborsClassifier",
        "params": {},
        "trusted_types": [*params["model"]["trusted_types"], "numpy.dtype", "scipy.sparse._csr.csr_matrix"],
    }
    params["model"]["mitigation"]["method"] = "none"
    (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert run(project, "train", "latency", "gate") == ["gate"]
    assert_blocked(project, "latency: single-record p99 = ")
    latency = report(project, "latency")
    assert latency["metrics"]["predictor"] == "pipeline"
    assert any(f.startswith("the model left the fast serving path: KNeighborsClassifier") for f in latency["failures"])
    table = (project.root / "reports" / "gate.md").read_text()
    assert "time to ready (scikit-learn fallback)" in table


def test_a_model_that_fails_a_hand_written_case_fails_behaviour(copied: Project) -> None:
    """A decision policy demanding near certainty of one group: a case from that group loses its expected label."""
    project = copied
    case = project.settings.gates.behaviour.cases[2]
    feature = project.settings.data.sensitive_features[1]
    path = project.root / "artifacts" / "model" / "decision.json"
    decision = json.loads(path.read_text())
    decision.update(group_feature=feature, group_thresholds={case.record[feature]: 0.999})
    path.write_text(json.dumps(decision))
    assert run(project, "behaviour", "gate") == ["gate"]
    assert_blocked(project, f"behaviour: case {case.name!r} expects >50K but the model says not >50K")
