"""params.yaml -> Settings: the shipped file loads; each kind of mistake is one sentence naming it."""

from pathlib import Path

import pytest
import yaml

from conveyor.cli import main
from conveyor.config import Threshold, human, load_settings
from conveyor.errors import ConveyorError
from tests.conftest import ROOT


def test_shipped_params_load() -> None:
    settings = load_settings(ROOT / "params.yaml")
    assert settings.data.target not in settings.data.features
    assert set(settings.data.sensitive_features) <= set(settings.data.features)
    assert settings.data.numeric and settings.data.categorical


def _write(tmp_path: Path, edit) -> Path:
    """The shipped params.yaml after `edit`, dumped with sorted keys (what the sentences quote)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda p: p["split"].update(test_size="big"), "split.test_size = 'big'"),
        (lambda p: p["split"].update(tset_size=0.2), "unknown key 'split.tset_size'"),
        (lambda p: p.pop("gates"), "required field 'gates' is missing"),
        (lambda p: p["gates"]["drift"].update(policy="blok"), "gates.drift.policy = 'blok'"),
        (lambda p: p["data"]["features"]["age"].update(min=100), "min 100.0 is greater than max 90.0"),
        (lambda p: p["data"].update(sensitive_features=["height"]), "sensitive feature 'height'"),
        (lambda p: p["data"]["features"]["age"].update(type="integer"), "data.features.age"),
        (
            lambda p: p["gates"]["evaluate"]["roc_auc"].pop("min"),
            "gates.evaluate.roc_auc = {label: ROC AUC} is invalid: expected min, max or both.",
        ),
        (
            lambda p: p["gates"]["evaluate"].update(roc_auc=0.88),
            "gates.evaluate.roc_auc = 0.88 is invalid: expected a mapping with min and/or max and a label",
        ),
        (
            lambda p: p["gates"]["evaluate"].update(roc_auc={"min": 1.5, "label": "ROC AUC"}),
            "gates.evaluate.roc_auc = {label: ROC AUC, min: 1.5} is invalid: limit 1.5 is out of range, "
            "expected limits between 0 and 1.",
        ),
        (
            lambda p: p["gates"]["quality"].update(label_rate={"min": 0.5, "max": 0.1, "label": "rate"}),
            "gates.quality.label_rate = {label: rate, max: 0.1, min: 0.5} is invalid: min 0.5 is greater than max 0.1.",
        ),
        (
            lambda p: p["gates"]["quality"].update(duplicate_fraction={"min": 0.0, "label": "dups"}),
            "gates.quality.duplicate_fraction = {label: dups, min: 0.0} is invalid: expected a max.",
        ),
        (
            lambda p: p["gates"]["latency"]["ready_cpu_seconds"].update(mx=5),
            "unknown key 'gates.latency.ready_cpu_seconds.mx'",
        ),
        (lambda p: p["gates"]["evaluate"].update(min_roc_auc=0.88), "unknown key 'gates.evaluate.min_roc_auc'"),
    ],
)
def test_bad_config_is_one_sentence(tmp_path: Path, edit, expected: str) -> None:
    with pytest.raises(ConveyorError) as caught:
        load_settings(_write(tmp_path, edit))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_bad_config_exits_non_zero_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, lambda p: p["model"].update(decision_threshold=1.5))
    assert main(["--params", str(path), "quality"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "model.decision_threshold = 1.5" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("text", ["[1, 2", "- just\n- a list\n"])
def test_unreadable_config(tmp_path: Path, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConveyorError, match=r"params\.yaml"):
        load_settings(path)


def test_bad_command_line_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["trian"])
    assert caught.value.code == 2
    assert "invalid choice: 'trian'" in capsys.readouterr().err


AUC = Threshold(min=0.88, label="ROC AUC")
P99 = Threshold(max=1.0, unit="ms", label="single-record p99")
RATE = Threshold(min=0.1, max=0.4, label="label rate", digits=2)


@pytest.mark.parametrize(
    ("threshold", "value", "passed", "margin"),
    [
        (AUC, 0.88, True, 0.0),  # at the limit: passes
        (AUC, 0.8801, True, 0.0001),
        (AUC, 0.8799, False, -0.0001),
        (P99, 1.0, True, 0.0),
        (P99, 0.999, True, 0.001),
        (P99, 1.001, False, -0.001),
        (RATE, 0.1, True, 0.0),
        (RATE, 0.4, True, 0.0),
        (RATE, 0.25, True, 0.15),  # in a band, the margin is to the nearer end
        (RATE, 0.35, True, 0.05),
        (RATE, 0.099, False, -0.001),
        (RATE, 0.401, False, -0.001),
    ],
)
def test_judge_passes_at_and_inside_the_limit_and_fails_beyond(threshold, value, passed, margin) -> None:
    judged = threshold.judge("m", value)
    assert judged.passed is passed
    assert judged.margin == pytest.approx(margin, abs=1e-12)
    assert (judged.failure is None) is passed
    assert judged.value == value


def test_judge_names_the_nearer_limit_of_a_band_and_its_comparison() -> None:
    low, high = RATE.judge("label_rate", 0.05), RATE.judge("label_rate", 0.5)
    assert (low.limit, low.comparison, low.failure) == (0.1, ">=", "label rate = 0.05 < 0.1")
    assert (high.limit, high.comparison, high.failure) == (0.4, "<=", "label rate = 0.5 > 0.4")
    assert RATE.judge("label_rate", 0.3).limit == 0.4
    assert (low.rule(), AUC.judge("roc_auc", 0.9).rule(), P99.judge("p", 0.5).rule()) == ("0.1 to 0.4", "≥ 0.88", "≤ 1")


def test_failure_sentences_are_human() -> None:
    assert AUC.judge("roc_auc", 0.812).failure == "ROC AUC = 0.812 < 0.88"
    assert P99.judge("single_p99_ms", 6.8).failure == "single-record p99 = 6.8 ms > 1 ms"
    throughput = Threshold(min=20000, unit="rows/s", label="batch throughput", digits=0)
    assert throughput.judge("batch_rows_per_s", 12990.4).failure == "batch throughput = 12,990 rows/s < 20,000 rows/s"
    # printed alike at the configured digits, so more are shown until the two differ
    assert AUC.judge("roc_auc", 0.87996).failure == "ROC AUC = 0.87996 < 0.88"
    per_feature = Threshold(max=0.1, label="equalized-odds difference").judge("eod", 0.19, subject="race")
    assert (per_feature.metric, per_feature.failure) == ("eod[race]", "equalized-odds difference (race) = 0.19 > 0.1")
    share = Threshold(max=0.01, label="duplicate share", percent=True, digits=2)
    assert share.judge("d", 0.0214).failure == "duplicate share = 2.14% > 1%"


def test_a_value_that_is_not_a_number_fails() -> None:
    judged = P99.judge("single_p99_ms", float("nan"))
    assert not judged.passed and judged.failure == "single-record p99 = n/a ms > 1 ms"


@pytest.mark.parametrize(
    ("number", "digits", "percent", "sign", "shown"),
    [
        (12990.4, 0, False, False, "12,990"),
        (5_000_000, 0, False, False, "5,000,000"),
        (1e-7, 3, False, False, "0"),  # never scientific notation
        (2.5e-5, 6, False, False, "0.000025"),
        (0.8800, 3, False, False, "0.88"),
        (1.0, 3, False, False, "1"),
        (0.047, 3, False, True, "+0.047"),
        (-7010.0, 0, False, True, "-7,010"),
        (0.0, 3, False, True, "0"),
        (-0.0001, 3, False, True, "0"),  # rounds to zero: no sign
        (0.0014, 2, True, False, "0.14%"),
        (float("inf"), 3, False, False, "n/a"),
    ],
)
def test_human_numbers(number, digits, percent, sign, shown) -> None:
    assert human(number, digits, percent, sign) == shown


def test_every_gated_number_in_the_shipped_params_is_a_threshold() -> None:
    gates = load_settings(ROOT / "params.yaml").gates
    shapes = {
        name: {metric: (t.min, t.max) for metric, t in getattr(gates, name).thresholds().items()}
        for name in ("quality", "drift", "evaluate", "fairness", "latency")
    }
    assert shapes == {  # the limits the flat keys had: none loosened
        "quality": {"rows": (1000, 5000000), "label_rate": (0.10, 0.40), "duplicate_fraction": (None, 0.01)},
        "drift": {"drifted_share": (None, 0.3)},
        "evaluate": {"roc_auc": (0.88, None), "pr_auc": (0.70, None), "f1": (0.65, None), "brier": (None, 0.12)},
        "fairness": {"equalized_odds_difference": (None, 0.10), "demographic_parity_ratio": (0.25, None)},
        "latency": {
            "single_cpu_p99_ms": (None, 1.0),
            "batch_cpu_rows_per_s": (20000, None),
            "ready_cpu_seconds": (None, 5.0),
        },
    }
    assert gates.evaluate.champion_tolerance == 0.005 and gates.fairness.min_group_size == 100
