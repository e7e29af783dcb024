"""The data-quality check with real Great Expectations, on small frames built from params.yaml and on the
real data. Each corruption must fail with its own one-sentence failure naming the observed value."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conveyor import cli
from conveyor.checks import quality
from conveyor.checks.result import CheckResult
from conveyor.config import CategoryFeature, NumericFeature, Settings
from tests.conftest import ROOT
from tests.unit.checks.quality_frames import ROWS, clean_frame, negative_label

PARAMS = ROOT / "params.yaml"


@pytest.fixture(scope="module")
def clean(settings: Settings) -> pd.DataFrame:
    return clean_frame(settings)


@pytest.fixture
def check(settings: Settings, tmp_path: Path) -> Callable[[pd.DataFrame], CheckResult]:
    return lambda frame: quality.validate(frame, settings, tmp_path / "docs")


def numeric(settings: Settings) -> tuple[str, NumericFeature]:
    """The first numeric feature that allows no nulls."""
    return next(
        (n, f) for n, f in settings.data.features.items() if isinstance(f, NumericFeature) and f.max_null_fraction == 0
    )


def category(settings: Settings) -> tuple[str, CategoryFeature]:
    return next((n, f) for n, f in settings.data.features.items() if isinstance(f, CategoryFeature))


def pct(fraction: float) -> str:
    """The failure sentences' format for shares of 1% and more."""
    assert fraction >= 0.01
    return f"{fraction * 100:.1f}%"


def test_clean_data_passes_with_every_column_measured(settings, clean, check, tmp_path):
    result = check(clean.copy())

    assert result.passed and result.failures == []
    positives = (clean[settings.data.target] == settings.data.positive_label).sum()
    assert result.metrics["rows"] == ROWS
    assert result.metrics["label_rate"] == pytest.approx(positives / ROWS)
    assert result.metrics["duplicate_fraction"] == 0
    assert result.metrics["null_fraction"] == {name: 0 for name in [*settings.data.features, settings.data.target]}
    suite = quality.build_suite(settings, list(clean.columns))
    assert result.metrics["expectations_evaluated"] == len(suite.expectations)
    assert result.metrics["expectations_failed"] == 0
    assert result.thresholds["duplicate_fraction"]["max"] == settings.gates.quality.duplicate_fraction.max
    judged = {j.metric: j for j in result.judgements}
    assert list(judged) == ["rows", "label_rate", "duplicate_fraction"]
    assert all(j.passed and j.failure is None for j in judged.values())
    assert judged["rows"].value == ROWS and judged["rows"].margin == ROWS - settings.gates.quality.rows.min
    assert judged["duplicate_fraction"].margin == settings.gates.quality.duplicate_fraction.max
    (report,) = (Path(p) for p in result.artifacts)
    assert report == tmp_path / "docs" / "index.html"
    assert settings.data.target in report.read_text()


def test_suite_covers_every_configured_column(settings, clean):
    suite = quality.build_suite(settings, list(clean.columns))
    columns = {e.column for e in suite.expectations if hasattr(e, "column")}
    assert columns == {*settings.data.features, settings.data.target}
    kinds = {type(e).__name__ for e in suite.expectations}
    assert {"ExpectTableRowCountToBeBetween", "ExpectCompoundColumnsToBeUnique"} <= kinds


def test_nulls_in_a_column_that_allows_none_fail(settings, clean, check):
    name, _ = numeric(settings)
    frame = clean.copy()
    frame.loc[:2, name] = None

    result = check(frame)

    assert not result.passed
    assert result.failures == [f"{name}: 0.25% null > 0% allowed"]
    assert result.metrics["null_fraction"][name] == pytest.approx(3 / ROWS)


def test_nulls_are_allowed_up_to_max_null_fraction(settings, clean, check):
    name, feature = max(settings.data.features.items(), key=lambda item: item[1].max_null_fraction)
    allowed = feature.max_null_fraction
    if allowed == 0:
        pytest.skip("params.yaml allows no nulls in any feature")
    within, beyond = clean.copy(), clean.copy()
    within.loc[: math.floor(allowed * ROWS) - 1, name] = pd.NA
    beyond_count = min(ROWS, math.ceil(2 * allowed * ROWS))
    beyond.loc[: beyond_count - 1, name] = pd.NA

    assert check(within).passed
    result = check(beyond)

    assert result.failures == [f"{name}: {pct(beyond_count / ROWS)} null > {pct(allowed)} allowed"]


def test_values_outside_the_range_fail_with_examples(settings, clean, check):
    name, feature = numeric(settings)
    frame = clean.copy()
    frame.loc[:1, name] = feature.max + 1
    frame.loc[2, name] = feature.min - 1

    result = check(frame)

    assert result.failures == [
        f"{name}: 3 values (0.25%) outside [{feature.min:g}, {feature.max:g}], "
        f"e.g. {feature.max + 1:g}, {feature.min - 1:g}"
    ]


def test_an_unknown_category_fails(settings, clean, check):
    name, feature = category(settings)
    frame = clean.copy()
    frame.loc[:2, name] = "not-a-category"

    result = check(frame)

    assert result.failures == [
        f"{name}: 3 values (0.25%) not among the {len(feature.values)} allowed categories, e.g. 'not-a-category'"
    ]


def test_missing_columns_fail_once_each(settings, clean, check):
    name, _ = category(settings)
    target = settings.data.target

    result = check(clean.drop(columns=[name, target]))

    assert result.failures == [f"column {name!r} is missing", f"column {target!r} is missing"]
    assert result.metrics["expectations_failed"] > 2  # the column's other expectations failed too, unreported


def test_strings_in_a_numeric_column_fail_as_a_type_error(settings, clean, check):
    name, _ = numeric(settings)
    frame = clean.copy()
    frame[name] = frame[name].astype(object)
    frame.loc[:2, name] = "n/a"

    result = check(frame)

    assert result.failures == [f"{name}: 3 values (0.25%) are not numbers, e.g. 'n/a'"]


def test_a_text_column_where_a_number_is_configured_fails(settings, clean, check):
    name, _ = numeric(settings)
    frame = clean.copy()
    frame[name] = frame[name].astype("string")

    assert check(frame).failures == [f"{name}: column type is str, expected a number"]


def test_too_few_rows_fail(settings, clean, check):
    gate = settings.gates.quality
    assert gate.rows.min == 1000, "the sentence below spells the limit out"

    result = check(clean.head(int(gate.rows.min) - 1))

    assert result.failures == ["row count = 999 rows < 1,000 rows"]
    (rows,) = (j for j in result.judgements if j.metric == "rows")
    assert (rows.passed, rows.limit, rows.margin) == (False, 1000, -1)


@pytest.mark.parametrize("side", ["low", "high"])
def test_a_label_rate_out_of_bounds_fails(settings, clean, check, side):
    bounds, target = settings.gates.quality.label_rate, settings.data.target
    positive = settings.data.positive_label
    rate = bounds.min / 2 if side == "low" else (bounds.max + 1) / 2
    positives = round(rate * ROWS)
    frame = clean.copy()
    frame[target] = pd.Series([positive] * positives + [negative_label(settings)] * (ROWS - positives))

    result = check(frame)

    assert (bounds.min, bounds.max) == (0.10, 0.40), "the sentence below spells the limits out"
    expected = "< 10%" if side == "low" else "> 40%"
    assert result.failures == [f"positive-label rate = {pct(positives / ROWS).replace('.0%', '%')} {expected}"]
    assert result.metrics["label_rate"] == pytest.approx(positives / ROWS)


def test_duplicates_pass_up_to_the_limit_and_fail_beyond(settings, clean, check):
    limit = settings.gates.quality.duplicate_fraction.max
    assert limit == 0.01, "the sentence below spells the limit out"
    copies = math.ceil(limit * ROWS)  # each copy and its original have a twin: ~2x the limit
    few = pd.concat([clean, clean.head(1)], ignore_index=True)
    many = pd.concat([clean, clean.head(copies)], ignore_index=True)

    passed = check(few)
    result = check(many)

    assert passed.passed and passed.metrics["duplicate_fraction"] == pytest.approx(2 / (ROWS + 1))
    share = 2 * copies / (ROWS + copies)
    assert result.failures == [f"duplicate-row share = {share * 100:.2f}% > 1%"]
    assert result.metrics["duplicate_fraction"] == pytest.approx(share)


def test_a_target_that_is_not_binary_fails(settings, clean, check):
    target, positive = settings.data.target, settings.data.positive_label
    frame = clean.copy()
    frame.loc[:2, target] = f"{positive}."

    result = check(frame)

    seen = ", ".join(repr(v) for v in sorted([positive, f"{positive}.", negative_label(settings)]))
    assert result.failures == [
        f"{target}: 3 distinct values, expected exactly 2 (the positive label {positive!r} and one other); seen: {seen}"
    ]


def test_a_target_without_the_positive_label_fails(settings, clean, check):
    target, positive = settings.data.target, settings.data.positive_label
    frame = clean.copy()
    frame[target] = negative_label(settings)

    failures = check(frame).failures

    assert f"{target}: the positive label {positive!r} never occurs; seen: {negative_label(settings)!r}" in failures
    assert "positive-label rate = 0% < 10%" in failures


def write_project(root: Path, settings: Settings, frame: pd.DataFrame) -> Path:
    """A params file whose training data is `frame` as CSV, both under `root`; returns the params path."""
    params = settings.model_dump(mode="json")
    params["data"] |= {"path": "data/train.csv", "incoming_path": "data/incoming.csv", "batches_dir": "data/batches"}
    (root / "data").mkdir()
    frame.to_csv(root / "data" / "train.csv", index=False)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root / "params.yaml"


def test_validate_exits_non_zero_on_corrupted_data(settings, clean, tmp_path, monkeypatch, capsys):
    name, feature = numeric(settings)
    frame = clean.copy()
    frame.loc[:2, name] = feature.max + 1
    params = write_project(tmp_path, settings, frame)
    monkeypatch.chdir(tmp_path)

    assert cli.main(["--params", str(params), "quality"]) == 1

    out, err = capsys.readouterr()
    assert out.strip().startswith("quality: FAILED (blocking: the pipeline stops here) in ")  # then its time
    sentence = f"{name}: 3 values (0.25%) outside [{feature.min:g}, {feature.max:g}], e.g. {feature.max + 1:g}"
    assert err.strip() == f"- {sentence}"
    result = CheckResult.read(tmp_path / "reports" / "quality.json")
    assert not result.passed and result.failures == [sentence]
    assert (tmp_path / "reports" / "quality" / "index.html").exists()


def test_the_real_data_passes_with_the_default_params(make_project, monkeypatch, capsys):
    project = make_project()
    monkeypatch.chdir(project.root)

    assert cli.main(["quality"]) == 0, capsys.readouterr().err

    result = CheckResult.read(project.root / "reports" / "quality.json")
    settings = project.settings
    assert result.passed and result.failures == []
    rows = len(pd.read_csv(settings.data.path))
    assert result.metrics["rows"] == rows
    assert settings.gates.quality.label_rate.min < result.metrics["label_rate"] < settings.gates.quality.label_rate.max
    assert 0 < result.metrics["duplicate_fraction"] <= settings.gates.quality.duplicate_fraction.max
    assert [j.metric for j in result.judgements if j.passed] == ["rows", "label_rate", "duplicate_fraction"]
    assert all((project.root / p).exists() for p in result.artifacts)


def test_the_report_is_one_self_contained_page_with_every_expectation(settings, clean, tmp_path):
    name, feature = numeric(settings)
    frame = clean.copy()
    frame.loc[:2, name] = feature.max + 1
    result = quality.validate(frame, settings, tmp_path / "docs", asset="data/train.csv")

    assert [Path(p) for p in result.artifacts] == [tmp_path / "docs" / "index.html"]
    page = (tmp_path / "docs" / "index.html").read_text()
    assert "Data asset: <b>data/train.csv</b>" in page and "None" not in page
    suite = quality.build_suite(settings, list(frame.columns))
    assert page.count("<code>expect_") == len(suite.expectations)
    broken = re.search(rf"<tr class=\"fail\">.*?<td>{name}</td>.*?</tr>", page, re.DOTALL)
    assert broken and f"between {feature.min:g} and {feature.max:g}" in broken[0]
    assert f"3 of {len(frame):,} values unexpected" in broken[0] and f"{feature.max + 1:g} (3 times)" in broken[0]
    assert "<style>" in page and not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|<link|<script""", page)
