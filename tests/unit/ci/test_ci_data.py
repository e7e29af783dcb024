"""`conveyor ci data pull` follows data.source: dvc needs its remote and never falls back to the demo fetch."""

from pathlib import Path

import pytest

from conveyor.ci import data
from conveyor.config import Settings
from conveyor.errors import ConveyorError


def _with_source(settings: Settings, source: str) -> Settings:
    return settings.model_copy(update={"data": settings.data.model_copy(update={"source": source})})


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, ...]]:
    monkeypatch.chdir(tmp_path)
    ran: list[tuple[str, ...]] = []
    monkeypatch.setattr(data, "_run", lambda *cmd: ran.append(cmd))
    monkeypatch.setattr(data.prepare, "prepare", lambda settings: ran.append(("prepare", settings.data.source)) or "")
    return ran


def test_dvc_source_without_a_remote_is_one_sentence_and_fetches_nothing(
    settings: Settings, commands: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(data.REMOTE_ENV, raising=False)
    with pytest.raises(ConveyorError, match=r"^DVC_REMOTE_URL is not set, and data.source = 'dvc' has nowhere"):
        data.pull(_with_source(settings, "dvc"))
    assert commands == []


def test_dvc_source_pulls_then_checks(settings: Settings, commands: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.REMOTE_ENV, "s3://bucket/conveyor")
    data.pull(_with_source(settings, "dvc"))
    assert commands[-2:] == [("dvc", "pull", "data.dvc"), ("prepare", "dvc")]


def test_demo_source_fetches_without_a_remote_and_pulls_with_one(
    settings: Settings, commands: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(data.REMOTE_ENV, raising=False)
    data.pull(_with_source(settings, "demo"))
    assert commands == [("prepare", "demo")]
    commands.clear()
    monkeypatch.setenv(data.REMOTE_ENV, "s3://bucket/conveyor")
    data.pull(_with_source(settings, "demo"))
    assert commands[-1] == ("dvc", "pull", "data.dvc")
