"""The wheel's contents, as pyproject.toml lists them, follow the tree: every package of the
library, and the suites and fixtures the wheel carries inside it."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_package_of_the_tree_is_in_the_wheel() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    tree = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "pytest_workshop").rglob("__init__.py")}
    assert set(setuptools["packages"]) == tree | {"pytest_workshop.suites", "pytest_workshop.fixtures"}
    assert setuptools["package-dir"] == {"pytest_workshop.suites": "suites", "pytest_workshop.fixtures": "fixtures"}


def test_the_suites_and_fixtures_patterns_take_every_file_they_hold() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package, folder in (("pytest_workshop.suites", "suites"), ("pytest_workshop.fixtures", "fixtures")):
        files = {p for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
        taken = {p for pattern in data[package] for p in (REPO / folder).glob(pattern) if p.is_file()}
        assert files == taken, sorted(str(p.relative_to(REPO)) for p in files - taken)
