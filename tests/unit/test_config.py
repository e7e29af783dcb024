"""params.yaml -> Settings: the shipped file loads; each kind of mistake is one sentence naming it."""

from pathlib import Path

import pytest
import yaml

from conveyor.cli import main
from conveyor.config import load_settings
from conveyor.errors import ConveyorError
from tests.conftest import ROOT


def test_shipped_params_load() -> None:
    settings = load_settings(ROOT / "params.yaml")
    assert settings.data.target not in settings.data.features
    assert set(settings.data.sensitive_features) <= set(settings.data.features)
    assert settings.data.numeric and settings.data.categorical


def _write(tmp_path: Path, edit) -> Path:
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
    ],
)
def test_bad_config_is_one_sentence(tmp_path: Path, edit, expected: str) -> None:
    with pytest.raises(ConveyorError) as caught:
        load_settings(_write(tmp_path, edit))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_bad_config_exits_non_zero_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
