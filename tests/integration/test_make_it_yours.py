"""README "Make it yours", performed: a copy of the repository switched to the churn fixture (tests/fixtures/churn)
with its own params.yaml and `dvc add data`, then one `make run`. The gate runs on that data, and data/ is never
written to."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.config import load_settings
from conveyor.manifests import contract
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIXTURE = ROOT / "tests" / "fixtures" / "churn"
STAMP = ".venv/.installed"  # the Makefile's install stamp: the copy uses this checkout's virtualenv as it is


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merge(base[key], value) if both else value
    return merged


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _fork(root: Path) -> dict[str, str]:
    """The repository's tracked files in `root`, made into the churn project as the README says; the env to run in."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        if (ROOT / name).is_file() and not name.startswith("tests/"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)
    (root / ".venv").symlink_to(ROOT / ".venv")
    env = os.environ | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns.db'}",
        "GIT_CONFIG_GLOBAL": str(root / ".gitconfig"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("CONVEYOR_PARAMS", None)
    (root / ".gitconfig").write_text("[user]\n\tname = Fork\n\temail = fork@conveyor.invalid\n")

    # The README's steps: the CSVs under data/, params.yaml describing them, `dvc add data`, the model's name.
    (root / "data.dvc").unlink()
    (root / "data").mkdir()
    for csv in ("train.csv", "incoming.csv"):
        shutil.copy2(FIXTURE / csv, root / "data" / csv)
    own = yaml.safe_load((FIXTURE / "params.yaml").read_text())
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"] = own.pop("data")
    (root / "params.yaml").write_text(yaml.safe_dump(_merge(params, own), sort_keys=False))
    old, new = f"/#/models/{params['model']['name']}", f"/#/models/{own['model']['name']}"
    settings = load_settings(root / "params.yaml")
    assert contract.model_name(root, settings)  # the manifests still name the demo's model: the check says so
    for path in [*(root / "argocd/applications").glob("*.yaml"), *(root / "k8s/overlays").glob("*/release/*.yaml")]:
        path.write_text(path.read_text().replace(old, new))
    assert contract.model_name(root, settings) == []

    for cmd in (["git", "init", "--quiet"], ["dvc", "add", "--quiet", "data"], ["git", "add", "--all"]):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
    subprocess.run(["git", "commit", "--quiet", "-m", "churn"], cwd=root, env=env, check=True, capture_output=True)
    return env


def test_make_run_trains_and_gates_a_fork_on_its_own_data_without_touching_it(tmp_path: Path) -> None:
    root = tmp_path / "fork"
    root.mkdir()
    env = _fork(root)
    data_before, dvc_file = _digests(root / "data"), (root / "data.dvc").read_text()
    settings = load_settings(root / "params.yaml")

    done = subprocess.run(
        ["make", "--old-file", STAMP, "run"], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "is the version data.dvc records" in done.stdout  # `conveyor data prepare`, not the demo fetch
    assert "\ngate passed: " in done.stdout

    features = list(settings.data.features)
    quality = json.loads((root / "reports/quality.json").read_text())
    assert quality["passed"] and sorted(quality["metrics"]["null_fraction"]) == sorted([*features, "churned"])
    drift = json.loads((root / "reports/drift.json").read_text())
    assert sorted(drift["metrics"]["columns"]) == sorted(features)
    fairness = (root / "reports/fairness.json").read_text()
    assert "gender" in fairness and "senior" in fairness and '"sex"' not in fairness
    metadata = json.loads((root / "models/metadata.json").read_text())
    assert sorted(metadata["features"]) == sorted(features)
    train = json.loads((root / "artifacts/train.json").read_text())
    assert train["data_version"] == yaml.safe_load(dvc_file)["outs"][0]["md5"]
    assert train["train_rows"] + train["holdout_rows"] == 3000

    assert _digests(root / "data") == data_before  # data/ was never written
    assert (root / "data.dvc").read_text() == dvc_file

    # Your data edited but not versioned: the data step refuses in one sentence and writes nothing.
    with (root / "data/train.csv").open("a") as handle:
        handle.write("12,50.5,1,one-year,credit-card,east,male,no,no\n")
    edited = _digests(root / "data")
    refused = subprocess.run(
        ["make", "--old-file", STAMP, "data"], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0
    assert "error: data/ differs from the version data.dvc records; version it with `dvc add data`" in refused.stderr
    assert _digests(root / "data") == edited

    # Switched back to demo by mistake: the demo fetch will not write over the churn data.
    demo = subprocess.run(
        [str(root / ".venv/bin/conveyor"), "data", "fetch"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert demo.returncode == 2
    assert demo.stderr.strip() == (
        "error: data.source = 'dvc': the demo fetch would write over your data in data/; set data.source: demo in "
        "params.yaml to use the demo data."
    )
    assert _digests(root / "data") == edited
