"""The import graph of a source tree, read from the code (never imported): what each module imports, lazy
imports inside functions included, `if TYPE_CHECKING:` blocks left out (they never run)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path


def modules(src: Path, package: str) -> dict[str, Path]:
    """Every module of `package` under `src`, by dotted name (a package by its own name, for its __init__)."""
    found = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))


def graph(src: Path, package: str) -> dict[str, set[str]]:
    """module -> the modules of `package` it imports, plus the packages Python runs on the way (their __init__)."""
    known = modules(src, package)
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets: set[str] = set()
        for imported in _imported_names(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            parts = imported.split(".")
            # `from a.b import c` names a module a.b.c or an attribute of a.b: keep what exists.
            targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in known)
        targets.discard(name)
        edges[name] = targets
    return edges


def external(src: Path, package: str) -> dict[str, set[str]]:
    """module -> the top-level names of what it imports from outside `package` (third-party and standard)."""
    found: dict[str, set[str]] = {}
    for name, path in modules(src, package).items():
        names = _imported_names(ast.parse(path.read_text()), name, path.name == "__init__.py")
        found[name] = {n.split(".")[0] for n in names if n and n.split(".")[0] != package}
    return found


def closure(edges: dict[str, set[str]], start: Iterable[str]) -> set[str]:
    """Every module reachable from `start`, `start` included."""
    seen: set[str] = set()
    pending = list(start)
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(edges.get(name, ()))
    return seen


def docstring_only(path: Path) -> bool:
    """True for a module that holds nothing but its docstring (most packages' __init__)."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body)
