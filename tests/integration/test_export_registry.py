"""`conveyor export`: models/ from a registered version in a real sqlite-backed MLflow, as the Argo path of
train.yml uses it (the pipeline ran on the cluster, so artifacts/model is not on the runner). Only the files whose
digests the gate recorded on the version (`file/<name>` tags) are exported, and metadata.json lists the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conveyor import bundle, cli
from conveyor.bundle import read_metadata
from conveyor.config import Settings, load_settings
from conveyor.data.frames import features_and_target
from conveyor.errors import ConveyorError
from conveyor.paths import MODELS
from conveyor.registry import tracking
from conveyor.registry.export import from_registry
from conveyor.training import model
from tests.conftest import ROOT, Project
from tests.factories import synthetic

pytestmark = pytest.mark.integration
COMMIT = "0123456789abcdef0123456789abcdef01234567"
METRICS = {"roc_auc": 0.875, "f1": 0.5, "holdout_rows": 80.0}


@pytest.fixture
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A small model fitted on synthetic rows, logged as `conveyor train` and the gate log it, registered and tagged
    with its files' digests as the gate tags it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    settings = load_settings(ROOT / "params.yaml")
    frame = synthetic(settings, 300, seed=1)
    x, y = features_and_target(frame, settings)
    pipeline = model.build_pipeline(settings).fit(x, y)
    saved = tmp_path / "saved"
    mlflow.sklearn.save_model(
        pipeline,
        str(saved),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=list(settings.model.trusted_types),
    )
    tracking.configure()
    with mlflow.start_run() as run:
        mlflow.set_tags({"git_commit": COMMIT, "data_version": "d41d8cd98f00b204e9800998ecf8427e"})
        mlflow.log_metrics({"train_rows": 220.0} | {f"evaluate.{k}": v for k, v in METRICS.items()})
        mlflow.log_artifacts(str(saved), tracking.MODEL_ARTIFACT)
    version = str(tracking.register(settings, run.info.run_id).version)
    tracking.tag_files(settings, version, bundle.digests(saved))
    return {
        "settings": settings,
        "version": version,
        "run_id": run.info.run_id,
        "pipeline": pipeline,
        "x": x,
        "files": bundle.digests(saved),
    }


def test_export_writes_the_bundle_of_a_registered_version(registered: dict[str, Any]) -> None:
    settings: Settings = registered["settings"]
    assert from_registry(settings, registered["version"]) == MODELS
    metadata = read_metadata()
    assert metadata["version"] == registered["version"]
    assert metadata["run_id"] == registered["run_id"]
    assert metadata["git_commit"] == COMMIT
    assert metadata["data_version"] == "d41d8cd98f00b204e9800998ecf8427e"
    assert metadata["metrics"] == METRICS  # evaluate.* only, prefix removed; train_rows left out
    assert metadata["name"] == settings.model.name
    assert set(metadata["features"]) == set(settings.data.features)
    assert metadata[bundle.FILES_KEY] == registered["files"]  # MLflow's own registered_model_meta left out
    assert sorted(p.name for p in MODELS.iterdir()) == sorted([*registered["files"], bundle.METADATA_FILE])
    loaded = bundle.load(MODELS, settings)
    np.testing.assert_allclose(
        loaded.predict_proba(registered["x"]), registered["pipeline"].predict_proba(registered["x"])
    )


def test_the_cli_exports_the_version_of_a_passed_gate_report(registered: dict[str, Any]) -> None:
    report = Path("reports") / "gate.json"
    report.parent.mkdir()
    report.write_text(json.dumps({"passed": True, "model_version": registered["version"]}))
    assert cli.main(["--params", str(ROOT / "params.yaml"), "export", "--gate-report", str(report)]) == 0
    assert read_metadata()["version"] == registered["version"]


def test_a_failed_gate_report_exports_nothing(registered: dict[str, Any]) -> None:
    report = Path("gate.json")
    report.write_text(json.dumps({"passed": False, "model_version": None}))
    assert cli.main(["--params", str(ROOT / "params.yaml"), "export", "--gate-report", str(report)]) == 2
    assert not MODELS.exists()


def test_an_unknown_version_is_refused(registered: dict[str, Any]) -> None:
    with pytest.raises(ConveyorError, match="no such version"):
        from_registry(registered["settings"], "99")
    assert not MODELS.exists()


def test_a_version_gated_before_digests_were_recorded_is_refused(registered: dict[str, Any]) -> None:
    settings: Settings = registered["settings"]
    client = MlflowClient()
    for name in registered["files"]:
        client.delete_model_version_tag(settings.model.name, registered["version"], tracking.FILE_TAG + name)
    with pytest.raises(ConveyorError, match=r"no file/\* digest tags: it was gated before file digests were recorded"):
        from_registry(settings, registered["version"])
    assert not MODELS.exists()


def test_a_registered_file_that_differs_from_its_tag_is_refused(registered: dict[str, Any]) -> None:
    settings: Settings = registered["settings"]
    expected = "sha256:" + "0" * 64
    MlflowClient().set_model_version_tag(settings.model.name, registered["version"], "file/model.skops", expected)
    with pytest.raises(ConveyorError) as raised:
        from_registry(settings, registered["version"])
    assert str(raised.value) == (
        f"model version {registered['version']}: model.skops is {registered['files']['model.skops']} in the "
        f"registry, expected {expected} (tag file/model.skops); the registered files are not the ones the gate "
        "exported."
    )
    assert not MODELS.exists()


def test_the_gate_tags_the_version_with_the_digests_metadata_json_lists(pipeline_run: Project) -> None:
    """The session's real pipeline run: what the image bakes in (models/) and the registry agree, file by file."""
    listed = read_metadata(pipeline_run.root / "models")[bundle.FILES_KEY]
    client = MlflowClient(tracking_uri=pipeline_run.tracking_uri)
    version = client.get_model_version_by_alias(pipeline_run.settings.model.name, tracking.CANDIDATE)
    assert {"model.skops", "decision.json", "MLmodel"} <= set(listed)
    assert tracking.tagged_files(version) == listed


def test_tagging_again_leaves_no_digest_of_an_earlier_export(registered: dict[str, Any]) -> None:
    settings: Settings = registered["settings"]
    tracking.tag_files(settings, registered["version"], {"gone.txt": "sha256:" + "1" * 64, **registered["files"]})
    tracking.tag_files(settings, registered["version"], registered["files"])
    assert tracking.tagged_files(tracking.by_version(settings, registered["version"])) == registered["files"]
