"""Deliberate breakages with guaranteed restore.

    from pytest_workshop.faults import Breaker
    breaker = Breaker(lab_config, allowed=True)
    entry = breaker.inject("etcd-leader-killed")
    ...
    breaker.restore(entry)          # or breaker.restore_all(), also from another process

Safety: breaking needs two agreeing signals: the lab's configuration says ``allow_breakage = true``
and the caller says so (``allowed=True``: the CLI's command, pytest's ``--allow-breakage``).
Every injection is journalled before it happens (faults/journal.py).

Controls (how a scenario reaches a member) come from ``[lab] control``:
- ``embedded:<dir>``: the embedded lab in that state directory (processes and namespaces);
- ``systemd``: the lab machine's systemd units through testinfra (``[lab] host``), see systemd.py.
A third (say OpenRC, or a cloud API) plugs in by adding an entry to ``CONTROLS``: a function from
(LabConfig, spec) to an object with ``members(component)`` / ``member(component, name)`` whose
members implement lab/control.py's MemberControl.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import WorkshopError
from pytest_workshop.faults import scenarios
from pytest_workshop.faults.journal import DEFAULT_DIR, Entry, Journal
from pytest_workshop.faults.model import FaultContext, Scenario

if TYPE_CHECKING:
    from pytest_workshop.lab.control import LabControl, MemberControl

__all__ = ["Breaker", "Entry", "Scenario", "control_for"]


def _embedded(lab: LabConfig, spec: str) -> LabControl:
    from pytest_workshop.lab.embedded import EmbeddedLab

    return EmbeddedLab(Path(spec))


def _systemd(lab: LabConfig, spec: str) -> LabControl:
    from pytest_workshop.faults.systemd import SystemdControl

    return SystemdControl(lab.host)


CONTROLS: dict[str, Callable[[LabConfig, str], LabControl]] = {"embedded": _embedded, "systemd": _systemd}


def control_for(lab: LabConfig) -> LabControl:
    kind, _, spec = (lab.control or "").partition(":")
    if kind not in CONTROLS:
        raise WorkshopError(
            f"{lab.source} says nothing about how to control the lab ([lab] control)",
            hint='add control = "systemd" (services on [lab] host) or "embedded:/var/tmp/workshop-lab" to [lab]',
        )
    return CONTROLS[kind](lab, spec)


class _NoControl:
    def __init__(self, lab: LabConfig) -> None:
        self.lab = lab

    def members(self, component: str) -> list[MemberControl]:
        return list(control_for(self.lab).members(component))  # raises: says how to add [lab] control

    def member(self, component: str, name: str) -> MemberControl:
        return control_for(self.lab).member(component, name)


@contextlib.contextmanager
def journalled_change(lab: LabConfig, scenario: str, data: dict[str, Any]) -> Iterator[None]:
    """A change an ordinary check makes to the lab (LAB2-12 drains a node), journalled like a
    fault: on disk before it is made, restored by the scenario's restore afterwards — and by the
    next run with --allow-breakage or `workshop fix --all` / `workshop janitor` if the run is killed."""
    breaker = Breaker(lab, allowed=True)
    entry = breaker.journal.record(scenario, data, origin="change")
    try:
        yield
    finally:
        breaker.restore(entry)


class Breaker:
    def __init__(self, lab: LabConfig, allowed: bool, journal_dir: Path = DEFAULT_DIR) -> None:
        self.lab, self.allowed = lab, allowed
        self.journal = Journal(lab.name, journal_dir)
        self._ctx: FaultContext | None = None

    @property
    def ctx(self) -> FaultContext:
        if self._ctx is None:
            # Scenarios that act through the components' own APIs (a drained node) need no
            # control; the others fail with control_for's hint when they reach for it.
            self._ctx = FaultContext(self.lab, control_for(self.lab) if self.lab.control else _NoControl(self.lab))
        return self._ctx

    def check_allowed(self) -> None:
        if not self.lab.allow_breakage:
            raise WorkshopError(
                f"breaking this lab is not allowed: {self.lab.source} does not say allow_breakage = true",
                hint="only break a disposable lab: set allow_breakage = true under [lab] in its lab.toml",
            )
        if not self.allowed:
            raise WorkshopError(
                "breaking needs an explicit request as well",
                hint="pass --allow-breakage to pytest (the `workshop break` command is the request itself)",
            )

    def inject(self, name: str, origin: str = "run") -> Entry:
        scenario = scenarios.get(name)
        self.check_allowed()
        missing = [c for c in (scenario.component, *scenario.needs) if not self.lab.has(c)]
        if missing:
            raise WorkshopError(f"scenario {name} needs {', '.join(missing)}, which this lab does not have")
        data = scenario.choose(self.ctx)
        entry = self.journal.record(name, data, origin)  # on disk before anything breaks
        try:
            scenario.inject(self.ctx, data)
        except BaseException:
            self.restore(entry)
            raise
        return entry

    def restore(self, entry: Entry) -> None:
        scenario = scenarios.get(entry.scenario)
        scenario.restore(self.ctx, entry.data)
        if not scenarios.wait_restored(self.ctx, scenario, entry.data):
            raise WorkshopError(
                f"{entry.scenario} still looks injected after restoring", hint="see `workshop lab status`"
            )
        self.journal.remove(entry)

    def injected(self) -> list[Entry]:
        return self.journal.entries()

    def restore_all(self, name: str | None = None) -> list[str]:
        """Restore every journalled fault (of one scenario, if named), newest first."""
        done, problems = [], []
        for entry in reversed(self.journal.entries()):
            if name is not None and entry.scenario != name:
                continue
            try:
                self.restore(entry)
                done.append(entry.scenario)
            except Exception as e:
                problems.append(f"{entry.scenario}: {str(e)[:200]}")
        if problems:
            raise WorkshopError("could not restore: " + "; ".join(problems), hint="see `workshop lab status`")
        return done
