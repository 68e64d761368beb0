"""The path solve takes along the guide, and what it does with each step (pure logic: a stand-in
for the lab's machines records what would run where)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_workshop.guide import Step, guides, read_guide
from pytest_workshop.guide.solve import is_exercise, path_to, solve
from pytest_workshop.guide.walk import StepFailed

REPO = Path(__file__).resolve().parents[2]


def test_the_path_is_every_lab_before_then_the_lab_up_to_its_step() -> None:
    all_guides = guides(REPO / "suites")
    numbers = [s.number for s in path_to(all_guides, "lab3", "3.2")]
    assert numbers[0] == "1.1" and numbers[-2:] == ["3.1", "3.2"]
    assert not any(n.startswith("0.") for n in numbers), "lab0 is the organizers', not on the way"
    assert [s.number for s in path_to(all_guides, "lab2", None)][-1] == "2.7"
    with pytest.raises(KeyError):
        path_to(all_guides, "lab3", "2.1")


def test_the_instructors_exercises_are_never_solved() -> None:
    lab6 = {s.number: s for s in guides(REPO / "suites")["lab6"]}
    assert [n for n, s in lab6.items() if is_exercise(s)] == ["6.2", "6.3", "6.4", "6.5"]


class Recorder:
    """The lab's machines, pretending: a block prints "made"; a step is done once its commands ran
    (unless ``fixed_by_commands`` is False) or if it is in ``done``."""

    def __init__(self, done: set[str], fixed_by_commands: bool = True) -> None:
        self.machines = {"node1", "node2", "node3"}
        self.done, self.fixed = done, fixed_by_commands
        self.ran: list[str] = []

    def run_on(self, machine: str, script: str) -> tuple[int, str]:
        self.ran.append(machine)
        return 0, "made\n"

    def check_passes(self, step: Step) -> bool:
        return step.number in self.done or (self.fixed and bool(self.ran))


def guide_of_two(tmp_path: Path) -> list[Step]:
    guide = tmp_path / "lab9" / "README.md"
    guide.parent.mkdir()
    guide.write_text(
        "# Lab 9\n\n## The guide\n\n### 9.1 A thing\n\nIt builds a thing.\n\n"
        "```sh on=node1,node2\necho made\n```\n\n```output\nmade\n```\n\n"
        "Check this step (it fails until the step is done): `pytest suites/lab9 --step 9.1`\n\n"
        "### 9.2 Another\n\nIt looks.\n\n```sh on=node1\necho made\n```\n\n"
        "Check this step: `pytest suites/lab9 --step 9.2`\n\n### 9.3 Far\n\nOn a machine this lab lacks.\n\n"
        "```sh on=devstack\necho made\n```\n\nCheck this step (it fails until the step is done): `pytest suites/lab9 --step 9.3`\n"
    )
    return read_guide(guide)


def test_a_building_step_runs_unless_done_and_one_that_stays_red_stops_the_solve(tmp_path: Path) -> None:
    steps = guide_of_two(tmp_path)
    fresh = Recorder(done=set())
    outcomes = [o.what for o in solve(steps, fresh, say=lambda _: None)]
    assert outcomes[0] == "ran" and fresh.ran == ["node1", "node2"]
    assert outcomes[1].startswith("nothing to catch up on") and outcomes[2] == "passed over: the lab has no devstack"
    again = Recorder(done={"9.1"})
    assert solve(steps, again, say=lambda _: None)[0].what == "done already" and again.ran == []
    with pytest.raises(StepFailed, match=r"step 9\.1 \(A thing\): its commands ran, and its check still fails"):
        solve(steps, Recorder(done=set(), fixed_by_commands=False), say=lambda _: None)
