"""The scored holdout every model check starts from: the holdout side of the split, scored by the model saved in a
folder (the trained one by default, or another such as the champion) under the decision policy saved beside it."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conveyor import bundle
from conveyor.checks import evaluate, holdout
from conveyor.config import Settings
from conveyor.data import frames
from conveyor.decision import Decision
from conveyor.paths import TRAINED_MODEL
from conveyor.registry import tracking
from tests.factories import synthetic, trained_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Settings:
    """A trained model on synthetic rows, some with a missing (nullable) category, and a per-group decision."""
    data = synthetic(settings, rows=2000, seed=2)
    nullable = next(n for n, f in settings.data.features.items() if f.type == "category" and f.max_null_fraction)
    data.loc[data.index % 17 == 0, nullable] = None
    monkeypatch.chdir(tmp_path)
    small = trained_project(tmp_path, data)
    group = small.data.sensitive_features[0]
    first, second = small.data.features[group].values[:2]
    Decision(threshold=0.5, group_feature=group, group_thresholds={first: 0.2, second: 0.8}).save(TRAINED_MODEL)
    return small


def test_rows_are_the_holdout_side_of_the_split(project: Settings) -> None:
    _, expected = frames.split(frames.load_training(project), project)
    rows = holdout.rows(project)
    assert list(rows.x.columns) == list(project.data.features)
    assert rows.x.equals(expected[list(project.data.features)])
    assert rows.y.tolist() == (expected[project.data.target] == project.data.positive_label).astype(int).tolist()
    assert 0 < len(rows.y) < 2000


def test_records_are_rows_as_the_api_receives_them(project: Settings) -> None:
    rows = holdout.rows(project)
    records = rows.records()
    assert len(records) == len(rows.y)
    assert all(list(r) == list(project.data.features) for r in records)
    values = [v for r in records for v in r.values()]
    assert None in values
    assert not any(isinstance(v, float) and math.isnan(v) for v in values)


def test_score_uses_the_trained_model_and_its_decision(project: Settings) -> None:
    scored = holdout.score(project)
    rows = holdout.rows(project)
    pipeline = bundle.load(TRAINED_MODEL, project)
    assert scored.x.equals(rows.x) and np.array_equal(scored.y, rows.y)
    assert np.array_equal(scored.proba, pipeline.predict_proba(rows.x)[:, 1])
    assert scored.decision == Decision.load(TRAINED_MODEL)
    assert np.array_equal(scored.labels, scored.decision.labels(rows.x, scored.proba))
    plain = (scored.proba >= 0.5).astype(int)
    assert not np.array_equal(scored.labels, plain)  # the group thresholds decided some labels


def test_score_another_model_folder_on_rows_already_read(project: Settings, tmp_path: Path) -> None:
    other = tmp_path / "champion"
    shutil.copytree(TRAINED_MODEL, other)
    Decision(threshold=0.9).save(other)
    rows = holdout.rows(project)
    scored = holdout.score(project, other, rows)
    assert scored.x is rows.x and scored.y is rows.y
    assert scored.decision == Decision(threshold=0.9)
    assert scored.labels.tolist() == (scored.proba >= 0.9).astype(int).tolist()


def test_evaluate_scores_the_champion_on_the_same_holdout(
    project: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The champion (here a copy of the trained model and its decision) scores exactly as the trained model."""

    def download(settings: Settings, alias: str, into: Path) -> Path:
        return Path(shutil.copytree(TRAINED_MODEL, into / "model"))

    monkeypatch.setattr(tracking, "download", download)
    monkeypatch.setattr(tracking, "by_alias", lambda settings, alias: SimpleNamespace(version=3))
    metrics = evaluate.run(project).metrics
    scored = holdout.score(project)
    trained = evaluate.scores(scored.y, scored.proba, scored.labels)
    assert metrics["champion"] == {"version": "3", **trained}
    assert {name: metrics[name] for name in trained} == trained
    assert metrics["holdout_rows"] == len(scored.y)
