"""The weekly retrain turns new data into a commit, with real git (a local bare origin standing in for GitHub),
real DVC (a local folder as the DVC remote) and the embedded sqlite MLflow.

Each "runner" is a fresh clone, as a CI job is: `conveyor ci data pull`, `conveyor ci data commit`, then the
training stage. The models it leaves record the data commit and its data.dvc md5, and a fresh checkout of that
commit plus `dvc pull` gives back exactly the data trained on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conveyor.config import load_settings
from tests.conftest import ROOT
from tests.factories import synthetic

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
CONVEYOR, DVC = str(BIN / "conveyor"), str(BIN / "dvc")
FAST = {"model": {"params": {"max_iter": 20}, "mitigation": {"method": "none"}}}


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass
class Place:
    root: Path
    env: dict[str, str]

    def sh(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def git(self, *args: str) -> str:
        return self.sh("git", *args).stdout.strip()

    def conveyor(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.sh(CONVEYOR, *args, check=check)

    def outputs(self) -> dict[str, str]:
        lines = Path(self.env["GITHUB_OUTPUT"]).read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)


@dataclass
class Team:
    """The bare origin, the DVC remote and the MLflow registry every runner shares."""

    tmp: Path
    origin: Path
    dvc_remote: Path

    def env(self, name: str) -> dict[str, str]:
        (self.tmp / "gitconfig").write_text("[user]\n\tname = runner\n\temail = runner@conveyor.invalid\n")
        return os.environ | {
            "GIT_CONFIG_GLOBAL": str(self.tmp / "gitconfig"),
            "DVC_REMOTE_URL": str(self.dvc_remote),
            "MLFLOW_TRACKING_URI": f"sqlite:///{self.tmp / 'mlflow.db'}",
            "GITHUB_OUTPUT": str(self.tmp / f"{name}.outputs"),
            "OMP_NUM_THREADS": "1",
        }

    def runner(self, name: str) -> Place:
        """A fresh clone with the data pulled, as a CI job starts."""
        subprocess.run(["git", "clone", "--quiet", str(self.origin), str(self.tmp / name)], check=True)
        place = Place(self.tmp / name, self.env(name))
        place.conveyor("ci", "data", "pull")
        return place

    def subjects(self) -> list[str]:
        done = subprocess.run(["git", "log", "--format=%s", "main"], cwd=self.origin, capture_output=True, text=True)
        return done.stdout.splitlines()


def seed_team(tmp: Path, data: Path, overrides: dict[str, Any], with_pipeline: bool = False) -> Team:
    """An origin whose main holds params.yaml and data.dvc for `data`, pushed to the DVC remote."""
    team = Team(tmp, tmp / "origin.git", tmp / "dvc-remote")
    seed = Place(tmp / "seed", team.env("seed"))
    seed.root.mkdir()
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)
    (seed.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for name in (".gitignore", ".dvcignore", "data.dvc") + (("dvc.yaml", "dvc.lock") if with_pipeline else ()):
        shutil.copy(ROOT / name, seed.root / name)
    if with_pipeline:
        shutil.copytree(ROOT / "src", seed.root / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    shutil.copytree(data, seed.root / "data")
    seed.git("init", "-q", "-b", "main")
    seed.sh(DVC, "init", "-q")
    seed.sh(DVC, "config", "core.autostage", "true")
    seed.sh(DVC, "commit", "--force", "--quiet", "data.dvc")
    seed.sh(DVC, "remote", "add", "--local", "--default", "seed", str(team.dvc_remote))
    seed.sh(DVC, "push", "--quiet", "data.dvc")
    seed.git("add", "-A")
    seed.git("commit", "-qm", "seed")
    seed.git("init", "-q", "--bare", "-b", "main", str(team.origin))
    seed.git("push", "-q", str(team.origin), "main")
    return team


def md5_at(place: Place, commit: str) -> str:
    return yaml.safe_load(place.git("show", f"{commit}:data.dvc"))["outs"][0]["md5"]


def trailers(place: Place, commit: str) -> dict[str, str]:
    text = place.git("log", "-1", "--format=%(trailers:only,unfold)", commit)
    return dict(line.split(": ", 1) for line in text.splitlines() if line)


@pytest.fixture
def real_team(tmp_path: Path, fetched_data: Path) -> Team:
    return seed_team(tmp_path, fetched_data, FAST | {"data": {"ingest_rows": 300}}, with_pipeline=True)


def test_two_weekly_retrains_make_two_data_commits_whose_models_reproduce(real_team: Team, tmp_path: Path) -> None:
    trained: list[dict[str, Any]] = []
    batches: list[bytes] = []
    for week in (1, 2):
        runner = real_team.runner(f"week{week}")
        said = runner.conveyor("ci", "data", "commit").stdout
        assert f"data: batch {week}, 300 rows" in said
        outputs = runner.outputs()
        assert outputs["train"] == "true" and outputs["commit"] == runner.git("rev-parse", "HEAD")
        if week == 1:  # the whole pipeline up to train: quality and drift rewrite dvc.lock before train reads git
            runner.sh(DVC, "repro", "train")
            assert runner.git("diff", "--name-only", "HEAD") == "dvc.lock"
        else:
            runner.conveyor("train")
        trained.append(json.loads((runner.root / "artifacts" / "train.json").read_text()))
        batches.append((runner.root / "data" / "batches" / f"batch-{week:04d}.csv").read_bytes())
        assert trained[-1]["git_commit"] == outputs["commit"]  # no -dirty: dvc.lock is the pipeline's own record

    assert real_team.subjects() == ["data: batch 2, 300 rows", "data: batch 1, 300 rows", "seed"]
    check = real_team.runner("check")
    first, second = (info["git_commit"] for info in trained)
    assert check.git("rev-parse", f"{second}^") == first
    assert trained[0]["data_version"] != trained[1]["data_version"]
    client = MlflowClient(tracking_uri=check.env["MLFLOW_TRACKING_URI"])
    for week, (info, batch) in enumerate(zip(trained, batches, strict=True), start=1):
        commit = info["git_commit"]
        assert info["data_version"] == md5_at(check, commit)
        assert trailers(check, commit) == {"Data-Version": info["data_version"], "Batch": str(week), "Rows": "300"}
        tags = client.get_run(info["run_id"]).data.tags
        assert (tags["git_commit"], tags["data_version"]) == (commit, info["data_version"])

        # reproduce: a checkout of the recorded commit and `dvc pull` give back the very data trained on
        check.git("checkout", "-q", commit)
        check.sh(DVC, "pull", "--quiet", "data.dvc")
        assert json.loads(check.sh(DVC, "status", "--json", "data.dvc").stdout) == {}
        found = sorted(p.name for p in (check.root / "data" / "batches").glob("*.csv"))
        assert found == [f"batch-{n:04d}.csv" for n in range(1, week + 1)]
        assert (check.root / "data" / "batches" / found[-1]).read_bytes() == batch
        rows = len(pd.read_csv(check.root / "data" / "train.csv")) + 300 * week
        assert info["train_rows"] + info["holdout_rows"] == rows


@pytest.fixture
def small_team(tmp_path: Path) -> Team:
    """Synthetic data with 60 incoming rows: two batches of 40 and 20, then the pool is exhausted."""
    settings = load_settings(ROOT / "params.yaml")
    data = tmp_path / "synthetic"
    data.mkdir()
    synthetic(settings, 200, seed=1).to_csv(data / "train.csv", index=False)
    synthetic(settings, 60, seed=2).to_csv(data / "incoming.csv", index=False)
    return seed_team(tmp_path, data, {"data": {"ingest_rows": 40}})


def test_an_exhausted_pool_is_a_clean_no_new_data_success(small_team: Team) -> None:
    runner = small_team.runner("runner")
    runner.conveyor("ci", "data", "commit")
    runner.conveyor("ci", "data", "commit")
    assert small_team.subjects() == ["data: batch 2, 20 rows", "data: batch 1, 40 rows", "seed"]
    tip = runner.git("rev-parse", "HEAD")
    Path(runner.env["GITHUB_OUTPUT"]).unlink()

    done = runner.conveyor("ci", "data", "commit")
    assert done.returncode == 0
    assert "no new data: all 60 rows of data/incoming.csv are already ingested in 2 batches" in done.stdout
    assert runner.outputs() == {"train": "false", "commit": "", "data-version": ""}
    assert runner.git("rev-parse", "HEAD") == tip and small_team.subjects()[0] == "data: batch 2, 20 rows"
    assert runner.git("status", "--porcelain") == ""


def test_a_data_commit_lands_on_a_remote_that_moved(small_team: Team) -> None:
    runner = small_team.runner("runner")
    other = small_team.runner("other")
    (other.root / "NOTES.md").write_text("a deploy or a doc landed meanwhile\n")
    other.git("add", "NOTES.md")
    other.git("commit", "-qm", "docs: notes")
    other.git("push", "-q", "origin", "main")

    said = runner.conveyor("ci", "data", "commit").stdout
    assert "pushed to origin/main" in said
    assert small_team.subjects() == ["data: batch 1, 40 rows", "docs: notes", "seed"]
    assert runner.git("rev-parse", "HEAD") == runner.outputs()["commit"]
    assert runner.git("diff", "--name-only", "HEAD^", "HEAD") == "data.dvc"


def test_a_batch_cut_from_a_superseded_data_version_is_not_pushed(small_team: Team) -> None:
    runner = small_team.runner("runner")
    other = small_team.runner("other")
    other.conveyor("ci", "data", "commit")  # another retrain recorded batch 1 first

    done = runner.conveyor("ci", "data", "commit", check=False)
    assert done.returncode == 2
    assert "recorded another data version in data.dvc meanwhile" in done.stderr
    assert small_team.subjects() == ["data: batch 1, 40 rows", "seed"]
    assert runner.git("log", "-1", "--format=%s") == "seed"
