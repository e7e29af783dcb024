"""Only what was gated is served (issue 13, defects 2 and 3): a bundle whose decision policy is not one params.yaml
allows, or whose files are not byte for byte those metadata.json lists, keeps /readyz at 503 for good, with one
sentence naming the problem in the answer and in exactly one log line; the untouched bundle becomes ready."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import skops.io
from fastapi.testclient import TestClient
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline

from conveyor import bundle
from conveyor.config import Settings
from conveyor.data import frames
from conveyor.serve import routes
from conveyor.serve.app import create_app
from tests import serving


def _reason_unready(folder: Path, settings: Settings, caplog: pytest.LogCaptureFixture) -> str:
    """The 503 sentence the app settles on for `folder`; checks that predict is 503 too and that one error line
    was logged with the same sentence."""
    with caplog.at_level(logging.INFO, logger="conveyor.serve"), TestClient(create_app(settings, folder)) as client:
        deadline = time.monotonic() + 120
        while True:
            ready = client.get(routes.READY)
            assert ready.status_code == 503, "a bundle that cannot be vouched for became ready"
            reason = ready.json()["error"]
            if "still loading" not in reason:
                break
            assert time.monotonic() < deadline, "the loader never finished"
            time.sleep(0.05)
        assert client.post(routes.PREDICT, json={}).status_code == 503
        for loader in [t for t in threading.enumerate() if t.name == "model-loader"]:
            loader.join(timeout=60)  # /readyz has the reason as soon as it is set; the log line follows it
    lines = [r.getMessage() for r in caplog.records if r.name == "conveyor.serve" and r.levelno >= logging.ERROR]
    assert len(lines) == 1 and reason.removeprefix("the model is not ready: ") in lines[0]
    return reason


def _copy(serve_bundle: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    shutil.copytree(serve_bundle, folder)
    return folder


def _reexport(folder: Path) -> None:
    """Record the digests of the files as they are now, as an export of them would."""
    metadata = bundle.read_metadata(folder)
    metadata[bundle.FILES_KEY] = bundle.digests(folder)
    (folder / bundle.METADATA_FILE).write_text(json.dumps(metadata))


GROUPED = {"threshold": 0.5, "group_feature": "race"}
POLICIES = {
    "string thresholds": (
        {**GROUPED, "group_thresholds": {"White": "0.4", "Black": "0.6"}},
        "group_thresholds['White'] = \"0.4\" is invalid: expected a number from 0 to 1.",
    ),
    "a list of thresholds": (
        {**GROUPED, "group_thresholds": [0.4, 0.6]},
        "group_thresholds = [0.4, 0.6] is invalid: expected a JSON object of group to threshold.",
    ),
    "a threshold of 5": (
        {**GROUPED, "group_thresholds": {"White": 5.0}},
        "group_thresholds['White'] = 5.0 is invalid: expected a number from 0 to 1.",
    ),
    "an unknown group": (
        {**GROUPED, "group_thresholds": {"White": 0.4, "Martian": 0.1}},
        'group_thresholds key "Martian" is invalid: expected a category of race in params.yaml',
    ),
}


@pytest.mark.parametrize("case", POLICIES)
def test_a_tampered_decision_policy_keeps_readyz_503_even_with_its_digest_recorded(
    case: str, serve_bundle: Path, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: strings or a list made every predict a TypeError 500; 5.0 or an unknown group served wrong labels.
    The digest is re-recorded, so the policy check alone refuses it."""
    folder = _copy(serve_bundle, tmp_path)
    policy, message = POLICIES[case]
    (folder / "decision.json").write_text(json.dumps(policy))
    _reexport(folder)
    reason = _reason_unready(folder, settings, caplog)
    assert f"{folder / 'decision.json'}: {message}" in reason


def _dummy_model(folder: Path, settings: Settings, train: pd.DataFrame) -> None:
    """A different valid skops Pipeline, as in the issue: it loads, predicts probabilities of [0, 1]."""
    x, y = frames.features_and_target(train, settings)
    skops.io.dump(Pipeline([("model", DummyClassifier(strategy="prior"))]).fit(x, y), folder / bundle.MODEL_FILE)


def _edited_policy(folder: Path, settings: Settings, train: pd.DataFrame) -> None:
    """A valid policy, just not the gated one: labels change silently without the digest check."""
    (folder / "decision.json").write_text(json.dumps({"threshold": 0.9}))


@pytest.mark.parametrize(("edit", "name"), [(_dummy_model, "model.skops"), (_edited_policy, "decision.json")])
def test_a_file_that_is_not_the_exported_one_keeps_readyz_503_naming_both_digests(
    edit: Callable[[Path, Settings, pd.DataFrame], None],
    name: str,
    serve_bundle: Path,
    serve_split: tuple[pd.DataFrame, pd.DataFrame],
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = _copy(serve_bundle, tmp_path)
    expected = bundle.read_metadata(folder)[bundle.FILES_KEY][name]
    edit(folder, settings, serve_split[0])
    found = bundle.digests(folder)[name]
    assert found != expected
    reason = _reason_unready(folder, settings, caplog)
    assert f"{folder / name}: found {found}, expected {expected} (metadata.json)" in reason


def _no_digests(folder: Path) -> None:
    metadata = bundle.read_metadata(folder)
    del metadata[bundle.FILES_KEY]
    (folder / bundle.METADATA_FILE).write_text(json.dumps(metadata))


def _removed_file(folder: Path) -> None:
    (folder / "MLmodel").write_text("flavors: {}\n")
    _reexport(folder)
    (folder / "MLmodel").unlink()


def _added_file(folder: Path) -> None:
    (folder / "extra.json").write_text("{}")


def _decision_not_listed(folder: Path) -> None:
    metadata = bundle.read_metadata(folder)
    del metadata[bundle.FILES_KEY]["decision.json"]
    (folder / bundle.METADATA_FILE).write_text(json.dumps(metadata))


BUNDLES = {
    "exported before digests": (_no_digests, "metadata.json: the key 'files' is missing", "re-export it"),
    "a listed file removed": (_removed_file, "MLmodel: missing; expected the file metadata.json lists", "sha256:"),
    "a file added": (_added_file, "extra.json: has no digest in metadata.json (sha256:", "the gate exported"),
    "the policy not listed": (_decision_not_listed, "files has no digest of 'decision.json'", "every file served"),
}


@pytest.mark.parametrize("case", BUNDLES)
def test_a_bundle_whose_files_are_not_all_listed_keeps_readyz_503(
    case: str, serve_bundle: Path, settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = _copy(serve_bundle, tmp_path)
    edit, *messages = BUNDLES[case]
    edit(folder)
    reason = _reason_unready(folder, settings, caplog)
    assert all(message in reason for message in messages), reason


def test_the_untouched_bundle_is_ready(serve_bundle: Path, settings: Settings, tmp_path: Path) -> None:
    folder = _copy(serve_bundle, tmp_path)
    listed = bundle.read_metadata(folder)[bundle.FILES_KEY]
    assert set(listed) == {"model.skops", "decision.json"}  # what tests/serving.py exports
    with TestClient(create_app(settings, folder)) as client:
        deadline = time.monotonic() + 120
        while (ready := client.get(routes.READY)).status_code != 200:
            assert "still loading" in ready.json()["error"], ready.json()
            assert time.monotonic() < deadline, "the model never became ready"
            time.sleep(0.05)
        assert ready.json() == {"status": "ready", "model_version": serving.VERSION}
        assert client.get(routes.MODEL).json()[bundle.FILES_KEY] == listed
