"""Fast-forward a lab along the guide (`workshop solve lab3 [--step 3.2]`): the guide's own
commands, as an attendee types them, for every step on the way to that one.

The way is the workshop's path: the steps of the labs before (lab1 to lab N-1), then lab N's up to
the step named. A step whose check fails until it is done (it builds what later steps stand on: a
Swarm, an etcd cluster, the app's stack) runs unless its check passes already: that is how a done
step is left as it is, and why solving twice changes nothing. The other steps' commands clean up
after themselves and leave nothing to catch up on; the instructor's exercises (lab6) and the
disruptive checks are never run. What runs the commands on a machine is the caller's
(``Machines``: the embedded lab's shell, SSH).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pytest_workshop.guide import Step
from pytest_workshop.guide.walk import StepFailed, run_step


class Machines(Protocol):
    """Where a lab's guide runs: its machines' names, a block on one, and a step's check."""

    machines: set[str]

    def run_on(self, machine: str, script: str) -> tuple[int, str]: ...

    def check_passes(self, step: Step) -> bool: ...


@dataclass(frozen=True)
class Outcome:
    step: Step
    what: str  # "ran", "done already", or why it was passed over

    def __str__(self) -> str:
        return f"{self.step.number} {self.step.title}: {self.what}"


def is_exercise(step: Step) -> bool:
    """The instructor's: an exercise that begins by breaking the lab, or a disruptive check."""
    return (bool(step.commands) and step.commands[0].machines == ("instructor",)) or "--allow-breakage" in (
        step.check or ""
    )


def path_to(guides: dict[str, list[Step]], lab: str, upto: str | None = None) -> list[Step]:
    """Every step of the labs before ``lab`` (lab0 is the organizers' and not on the way), then
    ``lab``'s steps up to ``upto`` (all of them by default)."""
    if lab not in guides:
        raise KeyError(lab)
    number = int(lab.removeprefix("lab"))
    way = [s for name, steps in sorted(guides.items()) if 0 < int(name.removeprefix("lab")) < number for s in steps]
    own = guides[lab]
    if upto is not None:
        if upto not in {s.number for s in own}:
            raise KeyError(upto)
        own = own[: [s.number for s in own].index(upto) + 1]
    return way + own


def solve(steps: list[Step], machines: Machines, say: Callable[[str], None] = print) -> list[Outcome]:
    """Take each step of ``steps`` that builds and is not done; a StepFailed names the first
    command that failed, or the step whose check still fails after its commands."""
    outcomes, saved = [], {}  # type: ignore[var-annotated]
    for step in steps:
        outcome = Outcome(step, _take(step, machines, saved))
        say(str(outcome))
        outcomes.append(outcome)
    return outcomes


def _take(step: Step, machines: Machines, saved: dict[str, str]) -> str:
    if is_exercise(step):
        return "passed over: an exercise of the instructor's"
    absent = sorted({m for b in step.commands for m in b.machines} - machines.machines - {"instructor"})
    if absent:
        return f"passed over: the lab has no {', '.join(absent)}"
    if not step.fails_before:
        return "nothing to catch up on: its commands leave nothing behind"
    if machines.check_passes(step):
        return "done already"
    run_step(step, machines.run_on, saved)
    if not machines.check_passes(step):
        raise StepFailed(
            f"step {step.number} ({step.title}): its commands ran, and its check still fails",
            hint=f"run its check to see why: `{step.check}`",
        )
    return "ran"
