"""The export records the SHA-256 of every bundle file in metadata.json; `verify` accepts exactly those bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conveyor import bundle
from conveyor.config import Settings
from conveyor.errors import ConveyorError

SERVED = ("model.skops", "decision.json")
INFO = {"run_id": "r", "git_commit": "0" * 40, "data_version": "d"}


@pytest.fixture
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Path:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "trained"
    (source / "nested").mkdir(parents=True)
    (source / "model.skops").write_bytes(b"model bytes")
    (source / "decision.json").write_text('{"threshold": 0.5}\n')
    (source / "nested" / "notes.txt").write_text("kept too\n")
    return bundle.export(settings, "3", INFO, {"roc_auc": 0.9}, source=source)


def test_export_records_the_digest_of_every_file_but_the_metadata(exported: Path) -> None:
    files = bundle.read_metadata(exported)[bundle.FILES_KEY]
    assert files == {
        name: "sha256:" + hashlib.sha256((exported / name).read_bytes()).hexdigest()
        for name in ("decision.json", "model.skops", "nested/notes.txt")
    }
    bundle.verify(exported, bundle.read_metadata(exported), SERVED)


def test_verify_names_the_file_and_both_digests(exported: Path) -> None:
    metadata = bundle.read_metadata(exported)
    expected = metadata[bundle.FILES_KEY]["nested/notes.txt"]
    (exported / "nested" / "notes.txt").write_text("changed\n")
    found = "sha256:" + hashlib.sha256(b"changed\n").hexdigest()
    with pytest.raises(ConveyorError) as raised:
        bundle.verify(exported, metadata, SERVED)
    assert str(raised.value) == (
        f"{exported / 'nested/notes.txt'}: found {found}, expected {expected} (metadata.json); "
        "the file is not the one the gate exported."
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (None, "the key 'files' is missing: the bundle was exported before file digests were recorded; re-export it"),
        (["model.skops"], 'files = ["model.skops"] is invalid: expected an object of file name to'),
        ({"model.skops": 1}, 'files = {"model.skops": 1} is invalid'),
        ({"decision.json": "sha256:0"}, "files has no digest of 'model.skops'"),
    ],
)
def test_verify_refuses_a_files_listing_it_cannot_check_everything_against(
    exported: Path, files: object, message: str
) -> None:
    metadata = {k: v for k, v in bundle.read_metadata(exported).items() if k != bundle.FILES_KEY}
    if files is not None:
        metadata[bundle.FILES_KEY] = files
    with pytest.raises(ConveyorError) as raised:
        bundle.verify(exported, metadata, SERVED)
    assert str(raised.value).startswith(f"{exported / 'metadata.json'}: ")
    assert message in str(raised.value)
