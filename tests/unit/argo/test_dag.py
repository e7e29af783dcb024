"""dvc.yaml -> stages and edges: which stage waits for which, from deps and outs alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conveyor.argo import dag
from conveyor.errors import ConveyorError


def _read(tmp_path: Path, stages: dict) -> dict[str, dag.Stage]:
    path = tmp_path / "dvc.yaml"
    path.write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    return {stage.name: stage for stage in dag.read(path)}


def test_edges_follow_files_folders_and_every_output_kind(tmp_path: Path) -> None:
    stages = _read(
        tmp_path,
        {
            "prepare": {"cmd": "p", "deps": ["raw"], "outs": ["features"]},
            "check": {"cmd": "c", "deps": ["raw"], "metrics": [{"reports/check.json": {"cache": False}}]},
            "plot": {"cmd": "pl", "deps": ["raw"], "plots": ["plots/roc.csv"]},
            "fit": {"cmd": "f", "deps": ["features/part-1.csv", "reports/check.json"], "outs": ["model"]},
            "report": {"cmd": "r", "deps": ["plots", "model"]},
            "lonely": {"cmd": "l", "deps": ["reports/check.jsonl", "modeling"]},
        },
    )
    assert stages["prepare"].upstream == ()
    assert stages["fit"].upstream == ("prepare", "check")  # a file inside an output folder; a metrics file
    assert stages["report"].upstream == ("plot", "fit")  # an output inside a dep folder; a plain out
    assert stages["lonely"].upstream == ()  # a shared name prefix is not a path prefix


def test_wdir_paths_are_relative_to_the_project_and_command_lists_run_in_order(tmp_path: Path) -> None:
    stages = _read(
        tmp_path,
        {
            "make": {"cmd": ["conveyor a", "conveyor b"], "wdir": "sub", "outs": ["../shared/out.csv"]},
            "use": {"cmd": "conveyor c", "deps": ["shared/out.csv"]},
        },
    )
    assert stages["make"].outs == ("shared/out.csv",)
    assert stages["make"].cmd == "conveyor a && conveyor b"
    assert stages["make"].wdir == "sub"
    assert stages["use"].upstream == ("make",)


def test_writer_of_names_the_stage_whose_outputs_hold_a_path(tmp_path: Path) -> None:
    stages = list(_read(tmp_path, {"a": {"cmd": "a", "outs": ["models"]}, "b": {"cmd": "b"}}).values())
    assert dag.writer_of(stages, "models/metadata.json").name == "a"
    with pytest.raises(ConveyorError, match=r"no stage writes reports/gate\.json"):
        dag.writer_of(stages, "reports/gate.json")


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ({"each": {"foreach": [1, 2], "do": {"cmd": "x"}}}, r"stage 'each' uses 'foreach'"),
        ({"t": {"cmd": "conveyor ${item}"}}, r"stage 't' cmd uses a \$\{\.\.\.\} template"),
        ({"t": {"cmd": "x", "deps": ["${data.path}"]}}, r"uses the template '\$\{data\.path\}'"),
        ({"t": {"deps": ["x"]}}, r"stage 't' has cmd = None"),
        ({"t": {"cmd": "x", "outs": [{"a": {}, "b": {}}]}}, r"stage 't' outs has the entry"),
        ({}, r"no stages"),
    ],
)
def test_what_cannot_become_a_task_is_refused_in_one_sentence(tmp_path: Path, stages: dict, message: str) -> None:
    with pytest.raises(ConveyorError, match=message) as caught:
        _read(tmp_path, stages)
    assert str(caught.value).count(". ") == 0 and str(caught.value).endswith(".")


def test_a_missing_definition_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConveyorError, match=r"dvc\.yaml: the pipeline definition does not exist"):
        dag.read(tmp_path / "dvc.yaml")
