"""The CLI: it starts without the pipeline's heavy libraries (the serving image has none of them), every
subcommand explains itself, and every pipeline step says how long it took and how far it got."""

import argparse
import io
import re
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.checks import cli as checks_cli
from conveyor.cli import Step, build_parser, elapsed, main
from tests.conftest import ROOT

PIPELINE_ONLY = ("mlflow", "great_expectations", "evidently", "dvc", "fairlearn", "hera", "matplotlib")


def test_building_the_parser_imports_no_pipeline_library() -> None:
    probe = (
        "import sys; from conveyor.cli import build_parser; build_parser(); "
        f"print(','.join(m for m in {PIPELINE_ONLY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every subcommand's path under `parser` (`("deploy", "bump")`), with its parser, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from subcommands(sub, (*path, name))


def test_every_subcommand_help_has_a_description() -> None:
    found = list(subcommands(build_parser()))
    assert len(found) > 20 and ("deploy", "bump") in [path for path, _ in found]
    for path, parser in found:
        description = parser.description or ""
        assert len(description) > 15 and description.endswith("."), f"conveyor {' '.join(path)} --help: {description!r}"
        assert " ".join(description.split()) in " ".join(parser.format_help().split())  # as wrapped


def test_a_step_prints_its_elapsed_time_and_plain_progress_lines_off_a_terminal(capsys) -> None:
    log = io.StringIO()
    with Step("train", total=5, stream=log, quiet=0.6) as step:
        step.advance("splitting")
        time.sleep(1.3)  # silence: the log still hears from it
        step.advance("fitting mitigation")
        step.finish("passed")
    lines = log.getvalue().splitlines()
    assert lines[0] == "train: 1/5 splitting"
    assert lines[1].startswith("train: splitting, ") and lines[1].endswith(" s so far")
    assert lines[-1] == "train: 2/5 fitting mitigation"
    out = capsys.readouterr().out
    assert re.fullmatch(r"train: passed in 1\.\d s\n", out), out


def test_a_step_that_raises_says_it_stopped(capsys) -> None:
    with pytest.raises(ValueError), Step("gate", stream=io.StringIO()):
        raise ValueError
    assert capsys.readouterr().out.startswith("gate: stopped in ")


@pytest.mark.parametrize(("seconds", "shown"), [(4.24, "4.2 s"), (0.04, "0 s"), (59.9, "59.9 s"), (125.4, "2 min 5 s")])
def test_elapsed_time_reads_as_people_say_it(seconds: float, shown: str) -> None:
    assert elapsed(seconds) == shown


def test_a_failed_check_says_the_gate_decides_unless_it_stops_the_pipeline() -> None:
    assert checks_cli.outcome("fairness", False) == "FAILED (the gate decides)"
    assert checks_cli.outcome("quality", False) == "FAILED (blocking: the pipeline stops here)"
    assert checks_cli.outcome("fairness", True) == "passed"


def test_a_check_command_prints_its_outcome_and_time_and_exits_0_on_failure(tmp_path, monkeypatch, capsys) -> None:
    from conveyor.checks.result import CheckResult

    failed = CheckResult.from_failures("fairness", ["equalized-odds difference (race) = 0.19 > 0.1"])
    module = types.SimpleNamespace(run=lambda settings: failed)
    monkeypatch.setitem(sys.modules, "conveyor.checks.fairness", module)
    monkeypatch.chdir(tmp_path)
    assert main(["--params", str(ROOT / "params.yaml"), "fairness"]) == 0
    captured = capsys.readouterr()
    assert re.fullmatch(r"fairness: FAILED \(the gate decides\) in \d+(\.\d)? s\n", captured.out), captured.out
    assert "  - equalized-odds difference (race) = 0.19 > 0.1" in captured.err


def test_a_training_that_stops_leaves_no_earlier_gate_page(tmp_path, monkeypatch, capsys) -> None:
    from conveyor.errors import ConveyorError

    def fail(settings: object) -> None:
        raise ConveyorError("model.params = {'no_such_parameter': 1} is invalid.")

    from conveyor.training import fit

    monkeypatch.setattr(fit, "run", fail)
    monkeypatch.chdir(tmp_path)
    Path("reports").mkdir()
    Path("reports/index.html").write_text("gate passed: 6 checks")
    assert main(["--params", str(ROOT / "params.yaml"), "train"]) == 2
    assert not Path("reports/index.html").exists()
    captured = capsys.readouterr()
    assert captured.out.startswith("train: stopped in ") and "no_such_parameter" in captured.err
