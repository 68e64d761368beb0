"""The code's shape, held by tests: no import circles, suites on the public API only, the library
rooms free of pytest, and the private names of other libraries still where we reach for them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "pytest_workshop"


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every pytest_workshop module ``path`` imports, at the top, in a function or for typing."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("pytest_workshop"):
            assert node.module is not None
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pytest_workshop")}
    return {m for m in found if m in known}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {name: imports_of(path, known) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_circle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


@pytest.mark.parametrize("room", ["config", "components", "fleet"])
def test_library_rooms_do_not_import_pytest(room: str) -> None:
    offenders = []
    for path in (PACKAGE / room).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "pytest" or n.startswith(("_pytest", "pytest.")) for n in names):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


@pytest.mark.parametrize("room", ["components", "config", "fleet", "lab", "report"])
def test_lower_rooms_do_not_import_the_plugin_or_the_cli(room: str) -> None:
    graph = import_graph()
    upward = {
        m: sorted(d for d in deps if d.startswith(("pytest_workshop.plugin", "pytest_workshop.cli")))
        for m, deps in graph.items()
        if m.startswith(f"pytest_workshop.{room}")
    }
    assert {m: d for m, d in upward.items() if d} == {}


def test_suites_import_only_the_public_api() -> None:
    used = set()
    for path in (REPO / "suites").rglob("*.py"):
        used |= set(re.findall(r"^\s*(?:from|import) (pytest_workshop[\w.]*)", path.read_text(), re.M))
    assert used <= {"pytest_workshop.api"}, used


def test_the_public_api_is_what_the_readme_documents() -> None:
    from pytest_workshop import api

    readme = (REPO / "README.md").read_text()
    for name in api.__all__:
        assert f"`{name}" in readme, f"README does not document pytest_workshop.api.{name}"


def test_modules_and_functions_stay_readable() -> None:
    """A module a reader takes in one sitting (450 lines), a function on one screen (60)."""
    too_long = []
    for path in [*PACKAGE.rglob("*.py"), *(REPO / "suites").rglob("*.py")]:
        text = path.read_text()
        if text.count("\n") > 450:
            too_long.append(f"{path.relative_to(REPO)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            length = (
                (node.end_lineno or 0) - node.lineno + 1
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                else 0
            )
            if length > 60:
                too_long.append(f"{path.relative_to(REPO)}: {node.name}() {length} lines")  # type: ignore[union-attr]
    assert not too_long, "; ".join(too_long)
