"""Disruptive checks, pytest-django style: blocked by default, opted in by marker and allowed only
when the lab's configuration (``allow_breakage = true``) and the run (``--allow-breakage``) agree.

- ``@pytest.mark.disruptive``: the check breaks the lab (through the ``fault`` fixture). Blocked
  checks are skipped with the reason and how to allow them.
- On a lab whose configuration allows breakage, every check holds the lab's lock: shared for
  ordinary checks, exclusive for disruptive ones, across xdist workers and other runs (plugin/concurrency/locks.py).
- Faults are restored at the check's teardown, on Ctrl-C and SIGTERM (turned into an interrupt so
  teardowns run), and at the start of the next run for any the journal still lists.
"""

from __future__ import annotations

import signal
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import WorkshopError
from pytest_workshop.plugin.state import is_worker

MARKER = "disruptive: the check breaks the lab on purpose (needs allow_breakage = true and --allow-breakage)"


def add_options(group: Any) -> None:
    group.addoption(
        "--allow-breakage",
        action="store_true",
        help="run disruptive checks (lab6), if the lab's configuration also allows it",
    )


class BreakagePlugin:
    """Per lab: a fleet run (plugin/fleet.py) breaks, locks and restores each lab through its own
    configuration, never another's."""

    def __init__(self, config: pytest.Config, labs: list[LabConfig]) -> None:
        self.config, self.labs = config, labs
        self._breakers: dict[str, Any] = {}
        self._in_force: list[str] | None = None
        self.undo_failed: list[str] = []

    def allowed(self, lab: LabConfig) -> bool:
        return bool(lab.allow_breakage and self.config.option.allow_breakage)

    def breaker(self, lab: LabConfig) -> Any:
        if lab.name not in self._breakers:
            from pytest_workshop.faults import Breaker

            self._breakers[lab.name] = Breaker(lab, allowed=self.allowed(lab))
        return self._breakers[lab.name]

    def pytest_report_header(self) -> list[str]:
        return [
            f"FAULT IN FORCE: {text}; restore it with `workshop fix --all`"
            for text in [*self.undo_failed, *self.in_force]
        ]

    @property
    def in_force(self) -> list[str]:
        if self._in_force is None:
            several = len(self.labs) > 1
            self._in_force = [
                f"{lab.name}: {text}" if several else text
                for lab in self.labs
                for text in faults_in_force(lab, restored_at_start=self.allowed(lab))
            ]
        return self._in_force

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not is_worker(self.config) and self.in_force:
            terminalreporter.section(
                "faults in force on this lab" if len(self.labs) == 1 else "faults in force on these labs",
                sep="=",
                bold=True,
                red=True,
            )
            for text in self.in_force:
                terminalreporter.write_line(f"  {text}: checks above may fail because of it", red=True)
            terminalreporter.write_line(
                "  hint: `workshop fix --all` restores it (an exercise? then it is meant to be)"
            )

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not is_worker(self.config):
            self._undo_orphaned_changes()
        if not any(self.allowed(lab) for lab in self.labs):
            return

        # SIGTERM (CI cancelling, `kill`) would end the process without teardown: make it an
        # interrupt, so the fault fixtures restore what they broke.
        def on_term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
        if not is_worker(self.config):
            self._restore_leftovers()

    def _undo_orphaned_changes(self) -> None:
        """A change an ordinary check made (LAB2-12 drains a node) and a killed run never undid is
        the suite's own, not an exercise: undone before anything runs, with or without
        --allow-breakage, on any lab."""
        from pytest_workshop.faults import Breaker
        from pytest_workshop.faults.journal import Journal

        for lab in self.labs:
            for entry in [e for e in Journal(lab.name).entries() if e.origin == "change" and e.orphaned]:
                try:
                    Breaker(lab, allowed=True).restore(entry)
                except Exception as e:  # the lab is not well enough: the entry stays, and is said
                    self.undo_failed.append(f"{lab.name}: {entry.describe()}, not undone: {str(e)[:160]}")

    def _restore_leftovers(self) -> None:
        """Faults a killed run left injected (its process is gone) are restored before anything
        runs. An instructor's `workshop break` is left alone: that one is the exercise."""
        for lab in self.labs:
            if self.allowed(lab):
                breaker = self.breaker(lab)
                for entry in [e for e in breaker.injected() if e.orphaned]:
                    breaker.restore(entry)

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        from pytest_workshop.plugin.fleet import lab_of

        for item in items:
            lab = lab_of(item)
            if item.get_closest_marker("disruptive") and not self.allowed(lab):
                item.add_marker(pytest.mark.skip(reason=blocked_reason(lab)))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
        # Locked whenever the lab *may* be broken, with or without --allow-breakage here: another
        # run may be breaking it right now.
        from pytest_workshop.plugin.fleet import lab_of

        lab = lab_of(item)
        if not lab.allow_breakage:
            return (yield)
        from pytest_workshop.plugin.concurrency import lab_lock_for

        exclusive = self.allowed(lab) and item.get_closest_marker("disruptive") is not None
        with lab_lock_for(lab, exclusive):
            return (yield)


def blocked_reason(lab: LabConfig) -> str:
    return "disruptive check: it breaks the lab on purpose; " + (
        "run with --allow-breakage"
        if lab.allow_breakage
        else f"only on a lab whose configuration says allow_breakage = true ({lab.source} does not), with --allow-breakage"
    )


def faults_in_force(lab: LabConfig, restored_at_start: bool) -> list[str]:
    """Faults the journal lists for this lab that this run did not inject and will not restore:
    an instructor's exercise, or what a killed run left (unless this run restores it first)."""
    from pytest_workshop.faults.journal import Journal

    return [
        e.describe()
        for e in Journal(lab.name).entries()
        if not (e.orphaned and (restored_at_start or e.origin == "change"))
    ]


class Faults:
    """What the ``fault`` fixture gives a check: ``fault("name")`` injects (returns the journal
    entry; ``.data`` says which member), ``fault.restore(entry)`` restores early."""

    def __init__(self, breaker: Any) -> None:
        self.breaker = breaker
        self.entries: list[Any] = []

    def __call__(self, name: str) -> Any:
        entry = self.breaker.inject(name)
        self.entries.append(entry)
        return entry

    def restore(self, entry: Any) -> None:
        self.breaker.restore(entry)
        self.entries.remove(entry)

    def restore_all(self) -> list[str]:
        problems = []
        for entry in reversed(list(self.entries)):
            try:
                self.restore(entry)
            except Exception as e:
                problems.append(f"{entry.scenario}: {str(e)[:160]}")
        return problems


@pytest.fixture
def fault(request: pytest.FixtureRequest) -> Iterator[Faults]:
    """Inject fault scenarios in a ``@pytest.mark.disruptive`` check; everything injected is
    restored after the test, even on Ctrl-C or SIGTERM."""
    from pytest_workshop.plugin.lifecycle import uninterrupted

    if request.node.get_closest_marker("disruptive") is None:
        raise WorkshopError("the fault fixture is for @pytest.mark.disruptive checks", hint="add the marker")
    from pytest_workshop.plugin.fleet import lab_of

    plugin = request.config.pluginmanager.get_plugin("workshop-breakage")
    assert isinstance(plugin, BreakagePlugin)
    faults = Faults(plugin.breaker(lab_of(request.node)))
    yield faults
    with uninterrupted():
        problems = faults.restore_all()
    if problems:
        raise WorkshopError("could not restore: " + "; ".join(problems), hint="run `workshop fix --all`")
