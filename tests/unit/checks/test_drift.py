"""The drift check on small synthetic windows built from params.yaml's features, with real Evidently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from conveyor.checks import drift
from conveyor.checks.result import CheckResult
from conveyor.config import Settings, load_settings
from conveyor.data import frames, ingest
from conveyor.errors import ConveyorError
from tests.conftest import ROOT

PARAMS = ROOT / "params.yaml"
ROWS = 2000  # per window: large enough that sampling noise stays far below the per-column thresholds


@pytest.fixture(scope="module")
def raw_params() -> dict[str, Any]:
    return yaml.safe_load(PARAMS.read_text())


def synthetic(settings: Settings, rows: int, seed: int) -> pd.DataFrame:
    """Rows drawn from the configured features: integers across each numeric range, categories with
    geometric (skewed) frequencies so that relabelling them is a real shift."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for name, feature in settings.data.features.items():
        if feature.type == "category":
            weights = 0.5 ** np.arange(len(feature.values))
            columns[name] = rng.choice(feature.values, size=rows, p=weights / weights.sum())
        else:
            columns[name] = rng.integers(int(feature.min), int(feature.max) + 1, size=rows)
    columns[settings.data.target] = rng.choice([settings.data.positive_label, "other"], size=rows)
    return pd.DataFrame(columns)


def inject(frame: pd.DataFrame, settings: Settings, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Shift numeric columns by one standard deviation; relabel each category as the next configured one."""
    shifted = frame.copy()
    for name in numeric:
        shifted[name] = shifted[name] + shifted[name].std()
    for name in categorical:
        values = settings.data.features[name].values
        shifted[name] = shifted[name].map(dict(zip(values, values[1:] + values[:1], strict=True)))
    return shifted


def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: dict[str, Any], **drift_gate: Any) -> Settings:
    """A params file in tmp_path whose relative data paths resolve there (the test chdirs into it)."""
    params = yaml.safe_load(yaml.safe_dump(raw))
    params["gates"]["drift"].update(drift_gate)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    return load_settings(tmp_path / "params.yaml")


def write_windows(settings: Settings, reference: pd.DataFrame, current: pd.DataFrame) -> None:
    settings.data.path.parent.mkdir(parents=True, exist_ok=True)
    reference.to_csv(settings.data.path, index=False)
    settings.data.batches_dir.mkdir(parents=True, exist_ok=True)
    current.to_csv(settings.data.batches_dir / "batch-0001.csv", index=False)


@pytest.fixture(scope="module")
def halves(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    shuffled = synthetic(settings, 2 * ROWS, seed=7).sample(frac=1.0, random_state=11)
    return shuffled.iloc[:ROWS].reset_index(drop=True), shuffled.iloc[ROWS:].reset_index(drop=True)


@pytest.fixture(scope="module")
def injected(settings: Settings) -> tuple[list[str], list[str]]:
    """Two numeric and four categorical columns to shift: 6 of the features, above the 0.3 share."""
    numeric, categorical = settings.data.numeric[:2], settings.data.categorical[:4]
    assert len(numeric) == 2 and len(categorical) == 4, "needs 2 numeric and 4 categorical features"
    assert 6 / len(settings.data.features) > settings.gates.drift.drifted_share.max
    return numeric, categorical


def expected_sentence(settings: Settings, drifted: list[str]) -> str:
    share = len(drifted) / len(settings.data.features)
    shown = drift.SHOWN_COLUMNS
    names = ", ".join(drifted[:shown]) + (", ..." if len(drifted) > shown else "")
    return f"drifted columns share = {share:.2f} > {settings.gates.drift.drifted_share.max:g} ({names})"


def test_no_drift_between_two_halves_of_the_same_data(tmp_path, monkeypatch, raw_params, halves):
    settings = workspace(tmp_path, monkeypatch, raw_params, policy="block")
    write_windows(settings, *halves)

    result = drift.run(settings)

    assert result.passed and result.failures == [] and result.warnings == []
    assert result.metrics["drifted_count"] == 0 and result.metrics["drifted_share"] == 0.0
    assert [(j.metric, j.passed, j.margin) for j in result.judgements] == [
        ("drifted_share", True, settings.gates.drift.drifted_share.max)
    ]
    assert result.metrics["window"] == "batch-0001.csv"
    assert (result.metrics["reference_rows"], result.metrics["current_rows"]) == (ROWS, ROWS)
    assert set(result.metrics["columns"]) == set(settings.data.features)
    for name, column in result.metrics["columns"].items():
        assert column["score"] < column["threshold"], name
        assert column["test"] in {"Wasserstein distance (normed)", "Jensen-Shannon distance"}
    assert CheckResult.read(tmp_path / "reports" / "drift.json") == result
    html = tmp_path / result.artifacts[0]
    assert result.artifacts == ["reports/drift.html"] and html.stat().st_size > 10_000


def test_injected_drift_fails_with_one_sentence(tmp_path, monkeypatch, raw_params, halves, injected):
    settings = workspace(tmp_path, monkeypatch, raw_params, policy="block")
    reference, current = halves
    write_windows(settings, reference, inject(current, settings, *injected))

    result = drift.run(settings)

    expected = [name for name in settings.data.features if name in {*injected[0], *injected[1]}]
    flagged = [name for name, column in result.metrics["columns"].items() if column["drifted"]]
    assert not result.passed
    assert sorted(flagged) == sorted(expected)
    assert result.metrics["drifted_count"] == len(expected)
    assert result.metrics["drifted_share"] == pytest.approx(len(expected) / len(settings.data.features))
    assert result.failures[0] == expected_sentence(settings, expected)
    assert result.failures[0].endswith(", ...)")  # six drifted, five named
    assert result.warnings == []
    judged, *columns = result.judgements
    assert (judged.metric, judged.passed, judged.failure) == ("drifted_share", False, result.failures[0])
    assert [j.metric for j in columns] == [f"column_score[{name}]" for name in expected]  # every one named
    assert result.failures[1:] == [j.failure for j in columns if j.failure]
    assert judged.margin == pytest.approx(
        settings.gates.drift.drifted_share.max - len(expected) / len(settings.data.features)
    )
    assert CheckResult.read(tmp_path / "reports" / "drift.json").failures == result.failures


def test_warn_policy_passes_and_reports_the_breach_as_a_warning(tmp_path, monkeypatch, raw_params, halves, injected):
    settings = workspace(tmp_path, monkeypatch, raw_params, policy="warn")
    reference, current = halves
    write_windows(settings, reference, inject(current, settings, *injected))

    result = drift.run(settings)

    expected = [name for name in settings.data.features if name in {*injected[0], *injected[1]}]
    assert result.passed and result.failures == []
    assert result.warnings[0] == expected_sentence(settings, expected)
    assert result.thresholds["policy"] == "warn"
    assert not result.judgements[0].passed  # breached, yet only a warning under this policy


def test_a_p_value_test_from_params_flags_drift_below_its_threshold(
    tmp_path, monkeypatch, raw_params, halves, injected
):
    settings = workspace(tmp_path, monkeypatch, raw_params, numeric={"test": "ks", "threshold": 0.01})
    reference, current = halves
    shifted, _ = injected
    write_windows(settings, reference, inject(current, settings, shifted, []))

    columns = drift.run(settings).metrics["columns"]

    for name in settings.data.numeric:
        assert columns[name]["test"] == "K-S p_value" and columns[name]["threshold"] == 0.01
        assert columns[name]["drifted"] == (name in shifted) == (columns[name]["score"] < 0.01), name


def test_an_unknown_stat_test_is_refused_with_the_field_named(tmp_path, monkeypatch, raw_params, halves):
    settings = workspace(tmp_path, monkeypatch, raw_params, categorical={"test": "wasserstein"})
    write_windows(settings, *halves)

    with pytest.raises(ConveyorError, match=r"gates\.drift\.categorical\.test = 'wasserstein' is not"):
        drift.run(settings)


def test_an_empty_feature_column_is_refused(tmp_path, monkeypatch, raw_params, halves, settings):
    settings = workspace(tmp_path, monkeypatch, raw_params)
    reference, current = halves
    empty = settings.data.numeric[0]
    write_windows(settings, reference, current.assign(**{empty: np.nan}))

    with pytest.raises(ConveyorError, match=rf"column '{empty}' is empty in the current \(batch-0001.csv\)"):
        drift.run(settings)


def test_the_sentence_names_the_drifted_columns_and_tells_value_from_threshold(settings):
    share = settings.gates.drift.drifted_share
    assert share.max == 0.3, "the sentences below spell the limit out"
    named = drift._named(share.judge("drifted_share", 4 / 13), ["a", "b"])
    assert named.failure == "drifted columns share = 0.31 > 0.3 (a, b)"
    assert (
        drift._named(share.judge("drifted_share", 0.3046), ["a"]).failure == "drifted columns share = 0.305 > 0.3 (a)"
    )
    many = [f"c{i}" for i in range(drift.SHOWN_COLUMNS + 1)]
    assert drift._named(share.judge("drifted_share", 0.5), many).failure.endswith("c4, ...)")
    assert drift._named(share.judge("drifted_share", 0.3), ["a"]).failure is None  # at the limit: passes


def test_windows_follow_ingested_batches(tmp_path, monkeypatch, raw_params):
    params = yaml.safe_load(yaml.safe_dump(raw_params))
    params["data"]["ingest_rows"] = 300
    settings = Settings.model_validate(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    settings.data.path.parent.mkdir(parents=True, exist_ok=True)
    synthetic(settings, 3000, seed=1).to_csv(settings.data.path, index=False)
    synthetic(settings, 1000, seed=2).to_csv(settings.data.incoming_path, index=False)
    train = frames.read_csv(settings.data.path, settings)
    incoming = frames.read_csv(settings.data.incoming_path, settings)

    reference, current, window = frames.windows(settings)
    assert window == "holdout" and len(reference) + len(current) == len(train)

    first = ingest.run(settings)
    reference, current, window = frames.windows(settings)
    assert window == first.name == "batch-0001.csv"
    pd.testing.assert_frame_equal(current, incoming.iloc[:300].reset_index(drop=True))
    pd.testing.assert_frame_equal(reference, train)

    ingest.run(settings)
    reference, current, window = frames.windows(settings)
    assert window == "batch-0002.csv"
    pd.testing.assert_frame_equal(current, incoming.iloc[300:600].reset_index(drop=True))
    pd.testing.assert_frame_equal(reference, pd.concat([train, incoming.iloc[:300]], ignore_index=True))

    metrics = drift.run(load_settings(tmp_path / "params.yaml")).metrics
    window_rows = (metrics["window"], metrics["reference_rows"], metrics["current_rows"])
    assert window_rows == ("batch-0002.csv", 3300, 300)


def test_one_strongly_drifted_column_blocks_on_its_own_and_is_named(tmp_path, monkeypatch, raw_params, halves):
    """age + 20 years (capped at the maximum): 1 column of 13, under the 0.3 share, yet it must not pass."""
    settings = workspace(tmp_path, monkeypatch, raw_params, policy="block")
    reference, current = halves
    name = settings.data.numeric[0]
    top = settings.data.features[name].max
    write_windows(settings, reference, current.assign(**{name: (current[name] + 20).clip(upper=top)}))

    result = drift.run(settings)

    assert result.metrics["drifted_count"] == 1
    share, column = result.judgements
    assert share.passed and share.metric == "drifted_share"
    score = result.metrics["columns"][name]["score"]
    limit = settings.gates.drift.numeric.column.max
    assert (column.metric, column.label, column.passed) == (f"column_score[{name}]", f"drift score ({name})", False)
    assert not result.passed
    assert result.failures == [f"drift score ({name}) = {score:.3f} > {limit:g}"]


def test_a_mildly_drifted_column_passes_and_is_still_named(tmp_path, monkeypatch, raw_params, halves):
    settings = workspace(tmp_path, monkeypatch, raw_params, policy="block")
    reference, current = halves
    name = settings.data.numeric[0]
    write_windows(settings, reference, current.assign(**{name: current[name] + 3}))  # ~0.14 std: drifted, mild

    result = drift.run(settings)

    assert result.passed and result.failures == []
    assert [(j.metric, j.passed) for j in result.judgements] == [
        ("drifted_share", True),
        (f"column_score[{name}]", True),
    ]


def test_with_no_batch_the_holdout_is_informational_never_a_drift_pass(tmp_path, monkeypatch, raw_params, halves):
    settings = workspace(tmp_path, monkeypatch, raw_params, policy="block")
    settings.data.path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(halves, ignore_index=True).to_csv(settings.data.path, index=False)

    result = drift.run(settings)

    assert result.metrics["window"] == "holdout" and result.metrics["judged"] is False
    assert result.passed and result.failures == [] and result.judgements == []
    (warning,) = result.warnings
    assert warning.startswith("no new batch: holdout vs training, informational, not a drift verdict (0 column(s)")
