"""The fairness check with real fairlearn: group metrics per sensitive feature, disparities gated over groups of
at least min_group_size rows, small groups reported with a warning, and the mitigation's cost."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference

from conveyor.checks import fairness
from conveyor.config import Settings, load_settings
from conveyor.decision import Decision
from conveyor.paths import TRAINED_MODEL
from tests.conftest import ROOT
from tests.factories import trained_project

PARAMS = ROOT / "params.yaml"
ROWS = 1200


def holdout(settings: Settings, rows: int = ROWS, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(x, y, proba): every sensitive feature split evenly between its first two values, the same base rate in
    every group, and probabilities that rank each row by its label equally well in every group."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            name: rng.choice(f.values[:2], rows) if f.type == "category" else rng.integers(int(f.min), int(f.max), rows)
            for name, f in settings.data.features.items()
        }
    )
    y = (rng.random(rows) < 0.3).astype(np.int64)
    proba = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.12, rows), 0, 1)
    return x, y, proba


def groups_of(settings: Settings) -> tuple[str, str, str]:
    feature = settings.data.sensitive_features[0]
    first, second = settings.data.features[feature].values[:2]
    return feature, first, second


def test_fair_predictions_pass_with_group_metrics(settings: Settings) -> None:
    x, y, proba = holdout(settings)
    result = fairness.assess(settings, x, y, proba, Decision(threshold=0.5))
    assert result.passed, result.failures
    assert result.failures == []
    for name in settings.data.sensitive_features:
        found = result.metrics["features"][name]
        assert found["equalized_odds_difference"] <= settings.gates.fairness.equalized_odds_difference.max
        assert found["gated_groups"] == 2
        for group in found["groups"].values():
            assert set(group) == {
                "count", "positives", "negatives", "selection_rate", "true_positive_rate", "false_positive_rate",
                    "gated",
            }  # fmt: skip
            assert group["gated"]
        assert sum(g["count"] for g in found["groups"].values()) == len(y)
    assert [(j.metric, j.passed) for j in result.judgements] == [
        (f"{metric}[{name}]", True)
        for name in settings.data.sensitive_features
        for metric in ("equalized_odds_difference", "demographic_parity_ratio")
    ]
    assert all(j.margin >= 0 for j in result.judgements)


def test_a_much_higher_threshold_for_one_group_fails_with_the_sentence(settings: Settings) -> None:
    x, y, proba = holdout(settings)
    feature, first, second = groups_of(settings)
    biased = Decision(threshold=0.5, group_feature=feature, group_thresholds={second: 0.85})
    result = fairness.assess(settings, x, y, proba, biased)
    assert not result.passed
    pattern = rf"^equalized-odds difference \({feature}\) = (\d\.\d+) > 0\.1$"
    matched = [re.match(pattern, f) for f in result.failures]
    assert any(matched), result.failures
    measured = float(next(m for m in matched if m).group(1))
    broken = next(j for j in result.judgements if j.metric == f"equalized_odds_difference[{feature}]")
    assert not broken.passed and broken.margin == pytest.approx(0.1 - broken.value) and broken.margin < 0
    found = result.metrics["features"][feature]
    assert measured == pytest.approx(found["equalized_odds_difference"], abs=5e-4)
    labels, groups = biased.labels(x, proba), x[feature]
    assert found["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, labels, sensitive_features=groups)
    )
    assert found["demographic_parity_ratio"] == pytest.approx(
        demographic_parity_ratio(y, labels, sensitive_features=groups)
    )
    tpr = {g: v["true_positive_rate"] for g, v in result.metrics["features"][feature]["groups"].items()}
    in_second = (x[feature] == second).to_numpy() & (y == 1)
    assert tpr[second] == pytest.approx(np.mean(proba[in_second] >= 0.85))
    assert tpr[first] - tpr[second] > 0.5
    # The same probabilities under the plain threshold, reported alongside, are fair.
    before = result.metrics["mitigation"]["global_threshold"][feature]
    assert before["equalized_odds_difference"] <= 0.10


def test_a_low_demographic_parity_ratio_fails(settings: Settings) -> None:
    x, y, proba = holdout(settings)
    feature, first, _ = groups_of(settings)
    proba = np.where(x[feature] == first, proba, 0.1)  # the second group is never selected
    result = fairness.assess(settings, x, y, proba, Decision(threshold=0.5))
    limit = settings.gates.fairness.demographic_parity_ratio.min
    assert result.metrics["features"][feature]["demographic_parity_ratio"] == 0.0
    assert f"demographic-parity ratio ({feature}) = 0 < {limit:g}" in result.failures


def test_small_groups_are_reported_with_a_warning_and_not_gated(settings: Settings) -> None:
    x, y, proba = holdout(settings)
    feature = settings.data.sensitive_features[0]
    third = "a-small-group"
    small = settings.gates.fairness.min_group_size - 1
    x.loc[: small - 1, feature] = third
    proba[:small] = 1 - y[:small]  # every prediction in the small group is wrong
    result = fairness.assess(settings, x, y, proba, Decision(threshold=0.5))
    assert result.passed, result.failures
    found = result.metrics["features"][feature]
    assert found["groups"][third]["count"] == small
    assert found["groups"][third]["gated"] is False
    assert found["groups"][third]["true_positive_rate"] == 0.0
    assert found["gated_groups"] == 2
    assert (
        f"{feature} group {third!r} has {small} holdout rows, below gates.fairness.min_group_size "
        f"{settings.gates.fairness.min_group_size}: its metrics are reported, not gated."
    ) in result.warnings


def test_a_feature_with_one_large_group_is_not_gated_and_says_so(settings: Settings) -> None:
    x, y, proba = holdout(settings, rows=300)
    feature, first, second = groups_of(settings)
    x[feature] = np.where(np.arange(300) < 240, first, second)
    result = fairness.assess(settings, x, y, proba, Decision(threshold=0.5))
    found = result.metrics["features"][feature]
    assert "equalized_odds_difference" not in found
    assert any(w.startswith(f"{feature} has 1 group(s) with enough holdout rows") for w in result.warnings)
    assert not any(j.metric.endswith(f"[{feature}]") for j in result.judgements)  # reported, not gated


def test_mitigation_cost_compares_the_global_threshold_with_the_decision(settings: Settings) -> None:
    x, y, proba = holdout(settings)
    feature, first, _ = groups_of(settings)
    decision = Decision(threshold=0.5, group_feature=feature, group_thresholds={first: 0.99})
    cost = fairness.assess(settings, x, y, proba, decision).metrics["mitigation"]
    plain, mitigated = (proba >= 0.5), decision.labels(x, proba)
    assert cost["accuracy"]["global_threshold"] == pytest.approx(np.mean(plain == y))
    assert cost["accuracy"]["mitigated"] == pytest.approx(np.mean(mitigated == y))
    assert cost["accuracy"]["cost"] > 0.1
    assert cost["decision"]["group_thresholds"] == {first: 0.99}
    assert 0 < cost["f1"]["mitigated"] < cost["f1"]["global_threshold"]


def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A project folder with training data and a real model saved the way `conveyor train` saves it."""
    repo = load_settings(PARAMS)
    x, y, _ = holdout(repo, rows=2000, seed=1)
    frame = x.assign(**{repo.data.target: np.where(y == 1, repo.data.positive_label, "other")})
    monkeypatch.chdir(tmp_path)
    return trained_project(tmp_path, frame)


def test_run_writes_json_and_html_and_fails_a_biased_decision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = _workspace(tmp_path, monkeypatch)
    feature, first, second = groups_of(small)
    Decision(threshold=0.0, group_feature=feature, group_thresholds={second: 1.0}).save(TRAINED_MODEL)

    result = fairness.run(small)
    assert not result.passed
    assert f"equalized-odds difference ({feature}) = 1 > 0.1" in result.failures
    written = json.loads(Path("reports/fairness.json").read_text())
    assert written["failures"] == result.failures
    assert written["artifacts"] == ["reports/fairness.html"]
    page = Path("reports/fairness.html").read_text()
    assert "FAILED" in page
    assert all(name in page for name in (feature, first, second, "TPR", "Mitigation: before and after"))
    assert page.count("<svg") == len(small.data.sensitive_features)  # one chart per sensitive feature

    Decision(threshold=0.0).save(TRAINED_MODEL)  # everyone selected: equal rates in every group
    assert fairness.run(small).passed


@pytest.mark.parametrize(("kind", "label"), [("positives", 1), ("negatives", 0)])
def test_a_large_group_with_few_positives_or_negatives_is_reported_not_gated(settings: Settings, kind, label) -> None:
    """A group with plenty of rows but a handful of one label: its rate on them is noise, so it never decides."""
    x, y, proba = holdout(settings)
    feature, _, _ = groups_of(settings)
    third = "a-lopsided-group"
    size = settings.gates.fairness.min_group_size + 50
    few = getattr(settings.gates.fairness, f"min_group_{kind}") - 1
    x.loc[: size - 1, feature] = third
    y[:size] = 1 - label
    y[:few] = label
    proba[:size] = 1 - y[:size]  # every prediction in the group is wrong: gated, it would fail the check
    result = fairness.assess(settings, x, y, proba, Decision(threshold=0.5))
    assert result.passed, result.failures
    group = result.metrics["features"][feature]["groups"][third]
    assert (group["count"], group[kind], group["gated"]) == (size, few, False)
    limit = getattr(settings.gates.fairness, f"min_group_{kind}")
    assert (
        f"{feature} group {third!r} has {size} holdout rows but {few} {kind}, below gates.fairness.min_group_{kind} "
        f"{limit}: its metrics are reported, not gated."
    ) in result.warnings


def test_the_report_gives_a_verdict_per_metric_and_the_mitigation_in_words(settings: Settings) -> None:
    x, y, proba = holdout(settings)
    feature, _, second = groups_of(settings)
    decision = Decision(threshold=0.5, group_feature=feature, group_thresholds={second: 0.7})
    result = fairness.assess(settings, x, y, proba, decision)
    page = fairness.render(result, settings.gates.fairness)

    verdicts = re.findall(r'<tr(?: class="fail")?><td><span class="badge (pass|fail)">', page)
    assert len(verdicts) == len(result.judgements) == 2 * len(settings.data.sensitive_features)
    eod = next(j for j in result.judgements if j.metric == f"equalized_odds_difference[{feature}]")
    assert not eod.passed
    row = re.search(rf"<tr class=\"fail\">.*?{re.escape(eod.label)}.*?</tr>", page)
    assert row and f"{eod.value:.3f}".rstrip("0") in row[0] and "≤ 0.1" in row[0] and "over the limit" in row[0]
    accuracy = result.metrics["mitigation"]["accuracy"]
    points = abs(accuracy["cost"]) * 100
    assert f"accuracy fell by {points:.2f}".rstrip("0").rstrip(".") in page
    assert f"Per-group thresholds on <b>{feature}</b>: {second} 0.7;" in page
    before = result.metrics["mitigation"]["global_threshold"][feature]["equalized_odds_difference"]
    mitigated = re.search(rf"<tr><td>{re.escape(eod.label)}</td>.*?</tr>", page)  # the before/after row
    assert mitigated and f"up by {eod.shown(eod.value - before)}; breaks the limit ≤ 0.1" in mitigated[0]
    assert page.count("<svg") == len(settings.data.sensitive_features)
    assert not re.search(r"\d\.\d{5,}", re.sub(r"<svg.*?</svg>", "", page, flags=re.DOTALL))  # no raw floats
    assert "{" not in re.sub(r"<(svg|style).*?</\1>", "", page, flags=re.DOTALL)  # no JSON dump
