"""Which checks a run runs: ``--check-ids LAB3-01,LAB3-04``, ``--step 3.2`` (the checks of a
guide's step), and ``-k LAB3-07`` (pytest's own selection, which matches a check's ID).

An ID or a step the suites given do not have is refused with one line, not an empty run. The
xdist controller collects nothing, so it checks against the markers written in the test files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pytest_workshop.plugin.catalogue import check_of
from pytest_workshop.plugin.state import is_worker

STEP = re.compile(r"^(\d)\.(\d+)$")
STATIC_STEP = re.compile(r"""\bstep\s*=\s*["'](\d\.\d+)["']""")


def add_options(group: Any) -> None:
    group.addoption("--check-ids", metavar="IDS", default=None, help="run only these checks, e.g. LAB3-01,LAB3-04")
    group.addoption(
        "--step",
        metavar="STEPS",
        default=None,
        help="run only the checks of these guide steps, e.g. 3.2 or 2.1,2.2 (`workshop checks` lists them)",
    )


def parse_check_ids(value: str) -> set[str]:
    """``--check-ids LAB3-01,lab3-04``: the IDs, upper case."""
    return {w.strip().upper() for w in value.split(",") if w.strip()}


def parse_steps(value: str) -> set[str]:
    steps = {w.strip() for w in value.split(",") if w.strip()}
    bad = sorted(s for s in steps if not STEP.match(s))
    if bad:
        raise pytest.UsageError(f"--step: {', '.join(bad)} is not a step (write it as in the guide: 3.2)")
    return steps


def refuse_unknown(option: str, wanted: set[str], known: set[str], what: str) -> None:
    unknown = sorted(wanted - known)
    if unknown:
        raise pytest.UsageError(
            f"{option}: {', '.join(unknown)} {'is not a ' + what if len(unknown) == 1 else 'are not ' + what + 's'} "
            "of the suites given (list them with `workshop checks`)"
        )


def static_markers(args: list[str], rootdir: Path) -> tuple[set[str], set[str]]:
    """(check IDs, steps) written in the test files under ``args``, read as text (no import)."""
    from pytest_workshop.plugin.catalogue import STATIC_CHECK

    ids: set[str] = set()
    steps: set[str] = set()
    for arg in args or ["."]:
        path = Path(arg.split("::", 1)[0])
        path = path if path.is_absolute() else rootdir / path
        files = [path] if path.is_file() else sorted(path.rglob("test_*.py")) if path.is_dir() else []
        for file in files:
            try:
                text = file.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            ids |= set(STATIC_CHECK.findall(text))
            steps |= set(STATIC_STEP.findall(text))
    return ids, steps


class SelectionPlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.ids = parse_check_ids(config.option.check_ids) if config.option.check_ids else None
        self.steps = parse_steps(config.option.step) if config.option.step else None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if (self.ids or self.steps) and self.config.pluginmanager.hasplugin("dsession"):
            ids, steps = static_markers(self.config.args, self.config.invocation_params.dir)
            if self.ids:
                refuse_unknown("--check-ids", self.ids, ids, "check")
            if self.steps:
                refuse_unknown("--step", self.steps, steps, "step")

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep: list[pytest.Item] = []
        drop: list[pytest.Item] = []
        ids: set[str] = set()
        steps: set[str] = set()
        for item in items:
            info = check_of(item)
            if info is not None:
                item.extra_keyword_matches.add(info.id)  # -k LAB3-07
                ids.add(info.id)
                steps |= {info.step} if info.step else set()
            chosen = info is not None and (self.ids is None or info.id in self.ids)
            chosen = chosen and (self.steps is None or (info is not None and info.step in self.steps))
            (keep if chosen or (self.ids is None and self.steps is None) else drop).append(item)
        # Under pytest-xdist the controller has refused unknown ones already (sessionstart): a
        # worker raising here would crash, not explain.
        if not is_worker(config):
            if self.ids:
                refuse_unknown("--check-ids", self.ids, ids, "check")
            if self.steps:
                refuse_unknown("--step", self.steps, steps, "step")
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep
