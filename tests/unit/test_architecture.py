"""The layout's rules, checked on the source (docs/architecture.md): which part may import which, and that every
dvc.yaml stage lists, as deps, every module its command runs, so `dvc repro` can never replay a stale result."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conveyor.checks import CHECKS
from conveyor.cli import build_parser
from tests.conftest import ROOT
from tests.support import imports

SRC = ROOT / "src"
# The ground floor: what every part may use. It imports nothing above it.
GROUND = {"conveyor", "config", "errors", "paths", "decision", "bundle", "provenance", "data", "predictionlog"}
# part -> the parts it may import besides the ground floor (docs/architecture.md, "Import rules").
ALLOWED: dict[str, set[str]] = {
    "ground": set(),
    "cli": set(),  # the parts' cli modules are loaded by name, so the CLI's own imports stay light
    "checks": {"serve", "registry"},  # latency times the serving predictor; evaluate scores the champion
    "training": {"registry"},
    "gate": {"checks", "registry"},
    "registry": set(),
    "serve": set(),
    "deploy": set(),
    "manifests": {"deploy", "serve"},  # the release files' layout; the app's routes, port and series
    "monitor": {"checks"},  # live drift and fairness measured as the pipeline's checks measure them
    "argo": set(),
    "ci": {"gate", "deploy", "registry"},  # registry-alias moves the alias a deploy commit's release file pins
}
# Libraries a part must never load, whatever the parts above allow: the serving image has none of them.
FORBIDDEN_LIBRARIES = {
    "serve": {
        "mlflow",
        "dvc",
        "git",
        "subprocess",
        "great_expectations",
        "evidently",
        "fairlearn",
        "matplotlib",
        "hera",
    },
    "deploy": {"mlflow", "great_expectations", "evidently", "fairlearn", "sklearn"},
}


def part(module: str) -> str:
    """The part a module belongs to: `ground`, `cli`, or its package under conveyor."""
    name = module.split(".")[1] if "." in module else "conveyor"
    if name in GROUND:
        return "ground"
    return name


def violations(src: Path) -> list[str]:
    """One sentence per import that breaks a rule."""
    found = []
    for module, targets in imports.graph(src, "conveyor").items():
        mine = part(module)
        for target in sorted(targets):
            theirs = part(target)
            if theirs in {mine, "ground"} and not (mine == "ground" and theirs != "ground"):
                continue
            if theirs not in ALLOWED.get(mine, set()):
                found.append(f"{module} imports {target}: {mine} may not import {theirs}")
    for module, libraries in imports.external(src, "conveyor").items():
        for library in sorted(libraries & FORBIDDEN_LIBRARIES.get(part(module), set())):
            found.append(f"{module} imports {library}: {part(module)} never loads {library}")
    return found


def test_every_import_follows_the_layout_rules() -> None:
    assert violations(SRC) == []


def test_every_part_is_named_in_the_rules() -> None:
    packages = {p.name for p in (SRC / "conveyor").iterdir() if (p / "__init__.py").exists()} - GROUND
    assert packages == set(ALLOWED) - {"ground", "cli"}
    loose = {p.stem for p in (SRC / "conveyor").glob("*.py")} - GROUND - {"__init__", "cli"}
    assert loose == set(), "only the ground floor and cli.py live outside a package"


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("serve/app.py", "from conveyor.training import model", "serve may not import training"),
        ("serve/app.py", "from conveyor.checks import result", "serve may not import checks"),
        ("serve/loading.py", "import mlflow", "serve never loads mlflow"),
        ("deploy/git.py", "from conveyor.checks.result import CheckResult", "deploy may not import checks"),
        ("config.py", "from conveyor.serve import routes", "ground may not import serve"),
    ],
)
def test_a_forbidden_import_is_reported(tmp_path: Path, module: str, line: str, expected: str) -> None:
    shutil.copytree(SRC / "conveyor", tmp_path / "conveyor")
    target = tmp_path / "conveyor" / module
    target.write_text(target.read_text() + f"\n\ndef _late() -> None:\n    {line}\n")
    assert any(expected in v for v in violations(tmp_path))


def test_imports_under_type_checking_do_not_count(tmp_path: Path) -> None:
    shutil.copytree(SRC / "conveyor", tmp_path / "conveyor")
    target = tmp_path / "conveyor" / "serve" / "app.py"
    target.write_text(target.read_text() + "\nif TYPE_CHECKING:\n    from conveyor.training import model\n")
    assert violations(tmp_path) == []


def stage_modules(cmd: str, src: Path = SRC) -> set[str]:
    """The modules of src/conveyor a stage's command runs: the CLI handler's module, the check a check stage
    names (stage, module and report share the name), and everything they import, minus the argument parsing."""
    args = build_parser().parse_args(cmd.split()[1:])
    start = {args.func.__module__}
    if args.step in CHECKS:
        start.add(f"conveyor.checks.{args.step}")
    return imports.closure(imports.graph(src, "conveyor"), start)


def uncovered(stage: dict, modules: set[str], src: Path = SRC) -> list[str]:
    """Module files the stage runs that none of its deps covers (a dep may be the file or a folder above it)."""
    paths = imports.modules(src, "conveyor")
    deps = [Path(d) for d in stage.get("deps", [])]
    missing = []
    for module in sorted(modules):
        if imports.docstring_only(paths[module]):
            continue  # a package's __init__ with nothing but a docstring changes nothing a stage computes
        path = paths[module].relative_to(src.parent)
        if not any(path == d or d in path.parents for d in deps):
            missing.append(str(path))
    return missing


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", list(STAGES))
def test_every_module_a_stage_runs_is_a_dependency(name: str) -> None:
    stage = STAGES[name]
    missing = uncovered(stage, stage_modules(stage["cmd"]))
    assert missing == [], f"dvc.yaml stage {name} runs {missing} but does not list them as deps"


def test_a_stage_missing_a_module_it_runs_is_caught() -> None:
    stage = dict(STAGES["latency"])
    stage["deps"] = [d for d in stage["deps"] if not d.startswith("src/conveyor/serve")]
    assert "src/conveyor/serve/fast.py" in uncovered(stage, stage_modules(stage["cmd"]))


def test_a_lazy_import_inside_a_function_is_followed(tmp_path: Path) -> None:
    shutil.copytree(SRC / "conveyor", tmp_path / "conveyor")
    target = tmp_path / "conveyor" / "checks" / "drift.py"
    target.write_text(target.read_text() + "\n\ndef _late() -> None:\n    from conveyor.serve import fast\n")
    assert "conveyor.serve.fast" in stage_modules("conveyor drift", tmp_path)
