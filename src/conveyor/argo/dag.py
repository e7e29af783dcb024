"""dvc.yaml as a DAG: its stages in file order, each with the stages it waits for.

A stage waits for every stage that writes one of its deps: an exact path, a file inside an output folder,
or an output inside a dep folder. Outputs are `outs`, `metrics` and `plots` alike, as DVC treats them."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from conveyor.errors import ConveyorError

OUTPUT_KEYS = ("outs", "metrics", "plots")
UNSUPPORTED_KEYS = ("foreach", "matrix", "do")


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str
    wdir: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    upstream: tuple[str, ...] = ()


def _paths(entries: Any, wdir: str, where: str) -> tuple[str, ...]:
    """Entries are plain paths or one-key mappings {path: options}; returned relative to the project root."""
    found = []
    for entry in entries or []:
        path = next(iter(entry)) if isinstance(entry, dict) and len(entry) == 1 else entry
        if not isinstance(path, str) or not path.strip():
            raise ConveyorError(f"dvc.yaml: {where} has the entry {entry!r}; expected a path or {{path: options}}.")
        if "${" in path:
            raise ConveyorError(f"dvc.yaml: {where} uses the template {path!r}; expected a literal path.")
        found.append(posixpath.normpath(posixpath.join(wdir, path)))
    return tuple(found)


def _command(name: str, cmd: Any) -> str:
    """DVC runs a list of commands one after another and stops at the first failure."""
    commands = [cmd] if isinstance(cmd, str) else cmd
    if not commands or not all(isinstance(c, str) and c.strip() for c in commands):
        raise ConveyorError(f"dvc.yaml: stage {name!r} has cmd = {cmd!r}; expected a command or a list of them.")
    if any("${" in c for c in commands):
        raise ConveyorError(f"dvc.yaml: stage {name!r} cmd uses a ${{...}} template; expected a literal command.")
    return " && ".join(commands)


def _stage(name: str, body: Any) -> Stage:
    if not isinstance(body, dict):
        raise ConveyorError(f"dvc.yaml: stage {name!r} is {type(body).__name__}; expected a mapping.")
    unsupported = [key for key in UNSUPPORTED_KEYS if key in body]
    if unsupported:
        raise ConveyorError(
            f"dvc.yaml: stage {name!r} uses {unsupported[0]!r}, which this renderer does not expand; "
            "expected plain stages."
        )
    wdir = posixpath.normpath(str(body.get("wdir", ".")))
    outs = sum((_paths(body.get(key), wdir, f"stage {name!r} {key}") for key in OUTPUT_KEYS), ())
    return Stage(
        name=name,
        cmd=_command(name, body.get("cmd")),
        wdir=wdir,
        deps=_paths(body.get("deps"), wdir, f"stage {name!r} deps"),
        outs=outs,
    )


def overlaps(dep: str, out: str) -> bool:
    """True when reading `dep` reads some of `out`: the same path, or one inside the other."""
    return dep == out or dep.startswith(out + "/") or out.startswith(dep + "/")


def read(path: Path) -> list[Stage]:
    """The stages of `path` in file order, each with `upstream` filled in."""
    if not path.is_file():
        raise ConveyorError(f"{path}: the pipeline definition does not exist; expected the DVC stages there.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConveyorError(f"{path}: not valid YAML ({exc.__class__.__name__}).") from None
    stages = raw.get("stages") if isinstance(raw, dict) else None
    if not isinstance(stages, dict) or not stages:
        raise ConveyorError(f"{path}: no stages; expected a `stages:` mapping with at least one stage.")
    parsed = [_stage(str(name), body) for name, body in stages.items()]
    return [
        replace(
            stage,
            upstream=tuple(
                other.name
                for other in parsed
                if other is not stage and any(overlaps(d, o) for d in stage.deps for o in other.outs)
            ),
        )
        for stage in parsed
    ]


def writer_of(stages: list[Stage], path: str) -> Stage:
    """The stage whose outputs hold `path`."""
    for stage in stages:
        if any(path == out or path.startswith(out + "/") for out in stage.outs):
            return stage
    raise ConveyorError(f"dvc.yaml: no stage writes {path}; expected one stage to list it in outs or metrics.")
