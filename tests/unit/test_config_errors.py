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
