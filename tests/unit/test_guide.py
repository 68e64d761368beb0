"""The guides as data: every check belongs to a step of its lab's guide, every step is checked,
the commands run on machines a lab has, and the output shapes match what they should."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_workshop.guide import Commands, guides, read_guide

REPO = Path(__file__).resolve().parents[2]
MACHINES = {"node1", "node2", "node3", "devstack", "instructor"}
MARKER = re.compile(r'@pytest\.mark\.check\(\s*"(LAB\d-\d\d)",(?:[^@]*?)step="(\d\.\d+)"', re.S)


def marked_steps() -> dict[str, str]:
    """check ID -> its step, from the markers' text."""
    found: dict[str, str] = {}
    for path in (REPO / "suites").glob("lab*/test_*.py"):
        found |= dict(MARKER.findall(path.read_text()))
    return found


def test_every_lab_has_a_guide_of_numbered_steps() -> None:
    all_guides = guides(REPO / "suites")
    assert sorted(all_guides) == [f"lab{i}" for i in range(7)]
    for lab, steps in all_guides.items():
        numbers = [s.number for s in steps]
        assert numbers == [f"{lab[3]}.{i}" for i in range(1, len(steps) + 1)], (lab, numbers)
        assert all(s.teaches and s.check for s in steps), [s.number for s in steps if not (s.teaches and s.check)]


def test_every_check_has_a_step_of_its_guide_and_every_step_is_checked() -> None:
    steps = {s.number: s for lab in guides(REPO / "suites").values() for s in lab}
    marked = marked_steps()
    assert len(marked) == 101, "every check says its step"
    unknown = {cid: st for cid, st in marked.items() if st not in steps}
    assert not unknown, f"checks of steps no guide has: {unknown}"
    for number, step in steps.items():
        assert step.check is not None
        if f"--step {number}" in step.check:
            assert number in marked.values(), f"step {number}'s check selects no check"


def test_commands_run_on_machines_a_lab_has_and_copied_values_are_printed_first() -> None:
    for lab in guides(REPO / "suites").values():
        saved: set[str] = set()
        for step in lab:
            for block in step.commands:
                assert set(block.machines) <= MACHINES, (step.number, block.machines)
                copied = set(re.findall(r"\$([A-Z_]+_TOKEN)\b", block.script))
                assert copied <= saved, f"step {step.number} uses {copied - saved} before a block prints it"
                if block.save:
                    saved.add(block.save)


def test_a_step_is_read_with_its_blocks_output_and_check(tmp_path: Path) -> None:
    guide = tmp_path / "lab9" / "README.md"
    guide.parent.mkdir()
    guide.write_text(
        "# Lab 9\n\n## The guide\n\n### 9.1 A thing\n\nIt teaches a thing.\n\nOn **node1**:\n\n"
        "```sh on=node1,node2\necho made\n```\n\n```output\nmade\n```\n\n"
        "```sh on=node1 save=THING_TOKEN\necho tok\n```\n\n"
        "Check this step (it fails until the step is done): `pytest suites/lab9 --step 9.1`\n\n"
        "### 9.2 Another\n\nMore.\n\nCheck this step: `pytest suites/lab9 --step 9.2`\n\n## The checks\n\n```sh on=x\nno\n```\n"
    )
    first, second = read_guide(guide)
    assert (first.number, first.title, first.teaches) == ("9.1", "A thing", "It teaches a thing.")
    assert first.commands[0] == Commands(("node1", "node2"), "echo made\n", 11, None, "made")
    assert first.commands[1].save == "THING_TOKEN"
    assert first.fails_before and not second.fails_before and second.commands == ()
    assert second.check == "pytest suites/lab9 --step 9.2"


@pytest.mark.parametrize(
    ("printed", "missing"),
    [
        ("node1 Ready Active Leader\nnode2 Ready Active Reachable\n", None),
        ("noise\nnode1 Ready Active Leader\nmore noise\nnode2 Ready Active Reachable\n", None),
        ("node2 Ready Active Reachable\nnode1 Ready Active Leader\n", "node2"),
        ("node1 Ready Active Leader\n", "node2"),
    ],
)
def test_an_output_shape_wants_its_lines_in_order(printed: str, missing: str | None) -> None:
    block = Commands(("node1",), "x", 1, expect="node1 Ready Active <role>\nnode2 Ready <avail> Reachable")
    found = block.shape_matches(printed)
    assert (found is None) if missing is None else (found is not None and missing in found), found
