"""params.yaml mistakes said in one sentence: YAML syntax with its place, the data source, cross-section rules."""

from pathlib import Path

import pytest
import yaml

from conveyor.config import load_settings
from conveyor.errors import ConveyorError
from tests.conftest import ROOT


def _params(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  path: data/train.csv\n  target: [income\nsplit: {}\n")
    with pytest.raises(ConveyorError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: not valid YAML at line 4, column 6:")
    assert message.count(".") >= 1 and "\n" not in message


def test_data_source_is_required_and_limited_to_demo_or_dvc(tmp_path: Path) -> None:
    with pytest.raises(ConveyorError, match=r"required field 'data\.source' is missing"):
        load_settings(_params(tmp_path, lambda raw: raw["data"].pop("source")))
    with pytest.raises(ConveyorError, match=r"data\.source = 'git' is invalid: input should be 'demo' or 'dvc'"):
        load_settings(_params(tmp_path, lambda raw: raw["data"].update(source="git")))
    assert load_settings(_params(tmp_path, lambda raw: raw["data"].update(source="dvc"))).data.source == "dvc"


def test_mitigation_feature_must_be_a_sensitive_feature(tmp_path: Path) -> None:
    path = _params(tmp_path, lambda raw: raw["model"]["mitigation"].update(feature="age"))
    with pytest.raises(ConveyorError) as raised:
        load_settings(path)
    assert str(raised.value) == (
        f"{path}: model.mitigation.feature = 'age' is invalid: expected one of data.sensitive_features ['sex', 'race']."
    )


def test_mitigation_none_needs_no_feature(tmp_path: Path) -> None:
    path = _params(tmp_path, lambda raw: raw["model"]["mitigation"].update(method="none", feature=None))
    assert load_settings(path).model.mitigation.feature is None


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda log: log.update(exclude=["salary"]),
            "serve.prediction_log.exclude = 'salary' is invalid: expected one of data.features.",
        ),
        (
            lambda log: log.update(negative_label=">50K"),
            "serve.prediction_log.negative_label = '>50K' is invalid: expected a label name other than "
            "data.positive_label.",
        ),
        (
            lambda log: log.update(sample=1.5),
            "serve.prediction_log.sample = 1.5 is invalid: input should be less than or equal to 1.",
        ),
        (
            lambda log: log.update(url="collector:8080"),
            "serve.prediction_log.url = 'collector:8080' is invalid: string should match pattern '^https?://\\S+$'.",
        ),
        (
            lambda log: log.update(queue_records=10),
            "serve = a mapping is invalid: prediction_log.queue_records 10 is less than max_batch_records 1000, "
            "expected room for a whole batch.",
        ),
        (
            lambda log: log.update(total_max_bytes=100000),
            "serve.prediction_log = a mapping is invalid: total_max_bytes 100000 is less than twice file_max_bytes "
            "16777216, expected room for the file being written and at least one closed file.",
        ),
        (lambda log: log.update(dir_name="x"), "unknown key 'serve.prediction_log.dir_name'"),
    ],
)
def test_prediction_log_settings_are_checked_in_one_sentence(tmp_path: Path, edit, expected: str) -> None:
    path = _params(tmp_path, lambda raw: edit(raw["serve"]["prediction_log"]))
    with pytest.raises(ConveyorError) as raised:
        load_settings(path)
    assert str(raised.value).startswith(f"{path}: ") and expected in str(raised.value)


def test_prediction_log_sinks_come_from_the_environment_when_set(tmp_path: Path) -> None:
    log = load_settings(ROOT / "params.yaml").serve.prediction_log
    assert (log.dir, log.url, log.on) == (None, None, False)
    both = log.with_env({"PREDICTION_LOG_DIR": str(tmp_path), "PREDICTION_LOG_URL": "http://collector:8080/log"})
    assert (both.dir, both.url, both.on) == (tmp_path, "http://collector:8080/log", True)
    assert log.with_env({"PREDICTION_LOG_DIR": "", "PREDICTION_LOG_URL": ""}) == log
    with pytest.raises(ConveyorError, match=r"^PREDICTION_LOG_URL = 'ftp://x' is invalid: expected an http"):
        log.with_env({"PREDICTION_LOG_URL": "ftp://x"})
