"""The fast predict path equals the scikit-learn Pipeline (the reference) on the whole holdout, bit for bit, and
the loader falls back to the Pipeline whenever the fast path does not apply."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from conveyor.config import Settings
from conveyor.data import frames
from conveyor.decision import Decision
from conveyor.serve import fast, loading
from conveyor.serve.compiled import hist
from tests import serving


@pytest.fixture(scope="module")
def compiled(loaded: loading.LoadedModel, settings: Settings) -> fast.FastPredictor:
    """The fast path itself, whatever the loader chose: the parity tests must not test the fallback."""
    return fast.compile_pipeline(loaded.reference.pipeline, settings.data.features)


@pytest.fixture(scope="module")
def holdout(serve_split: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return serve_split[1]


def test_the_loader_serves_the_fast_path(loaded: loading.LoadedModel) -> None:
    assert loaded.predictor.name == "fast"


def test_fast_path_equals_pipeline_on_the_whole_holdout(
    loaded: loading.LoadedModel, compiled: fast.FastPredictor, holdout: pd.DataFrame, settings: Settings
) -> None:
    x, _ = frames.features_and_target(holdout, settings)
    expected = loaded.reference.pipeline.predict_proba(x)[:, 1]  # exactly as evaluation calls it
    records = serving.records(holdout, settings)
    one_by_one = np.concatenate([compiled.proba([r]) for r in records])
    batches = np.concatenate(
        [
            compiled.proba(records[i : i + settings.serve.max_batch_records])
            for i in range(0, len(records), settings.serve.max_batch_records)
        ]
    )
    decision = Decision(threshold=settings.model.decision_threshold)
    for got in (one_by_one, batches):
        assert len(got) == len(holdout) > 1000
        max_diff = float(np.max(np.abs(got - expected)))
        flips = int(np.sum(decision.labels(x, got) != decision.labels(x, expected)))
        assert (max_diff, flips) == (0.0, 0), f"max |p diff| {max_diff:.3g}, {flips} label flips"


def test_unknown_and_missing_categories_match_the_pipeline(
    loaded: loading.LoadedModel, compiled: fast.FastPredictor, settings: Settings
) -> None:
    records = loading.probe_records(settings, rows=64, seed=3)
    for i, name in enumerate(settings.data.categorical):
        records[i][name] = "not-a-known-category"
        records[i + 16][name] = None
    assert np.array_equal(compiled.proba(records), loaded.reference.proba(records))
    assert np.array_equal(np.concatenate([compiled.proba([r]) for r in records]), loaded.reference.proba(records))


def test_a_fast_path_that_differs_is_not_served(
    loaded: loading.LoadedModel, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A compiled forest off by 1e-9 (far inside any label's margin) must be caught by the load-time check."""
    original = hist.Forest.proba
    monkeypatch.setattr(hist.Forest, "proba", lambda self, rows: original(self, rows) + 1e-9)
    with caplog.at_level(logging.WARNING, logger="conveyor.serve"):
        chosen = loading.choose_predictor(loaded.reference.pipeline, loaded.reference, settings)
    assert chosen is loaded.reference
    assert "differs by up to 1e-09 on probe records (tolerance 0)" in caplog.text
