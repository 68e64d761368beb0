"""The guides, executed: a bare lab (the workshop's starting state), every step of labs 1-6 in
order, the guide's own commands on the lab's machines; before a step that creates what its checks
look at, they fail naming the step; after it, they pass; at the end the conformance is green on
what the guide built. The commands are read from the guides themselves (pytest_workshop.guide).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_workshop.guide import Step, guides
from pytest_workshop.guide.walk import StepFailed, run_step
from pytest_workshop.lab.guide_machines import GuideMachines

REPO = Path(__file__).resolve().parents[2]
WALK_LAB_DIR = Path(os.environ.get("WORKSHOP_WALK_LAB_DIR", "/var/tmp/workshop-lab-walk"))
LABS = ("lab1", "lab2", "lab3", "lab4", "lab5", "lab6")


class BareLab(GuideMachines):
    def __init__(self, config: Path) -> None:
        super().__init__(WALK_LAB_DIR, config, REPO)
        self.timings: list[tuple[str, float, float]] = []  # step, its commands' seconds, its check's
        self.saved: dict[str, str] = {}  # what a save= block printed, for the blocks after it


@pytest.fixture(scope="module")
def bare_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BareLab]:
    from pytest_workshop.lab import EmbeddedLab, LabSettings

    config = tmp_path_factory.mktemp("walk") / "lab.toml"
    lab = EmbeddedLab(WALK_LAB_DIR)
    settings = LabSettings(
        name="walk",
        prefix="wsb",
        segment="10.251.2.0/24",
        etcd_port_base=25790,
        bare=True,
        openstack=True,
        keystone_port=26000,
        neutron_port=26696,
    )
    lab.down()
    lab.up(settings, config)
    try:
        yield BareLab(config)
    finally:
        lab.down()


def walk(lab: BareLab, step: Step) -> None:
    """One step: its check fails first where the step creates what it looks at (or once the
    instructor has broken the lab, in an exercise), then its commands, then its check passes."""
    exercise = bool(step.commands) and step.commands[0].machines == ("instructor",)
    saved = lab.saved
    if exercise:
        run_step(step, lab.run_on, saved, last=1)
    if step.fails_before or exercise:
        before = lab.check(step, "--no-allure", "-q")
        assert before.returncode == 1, (
            f"step {step.number}'s check did not fail before the step:\n{before.stdout[-3000:]}"
        )
        if step.fails_before:
            assert f"guide step {step.number}" in before.stdout, before.stdout[-3000:]
    t0 = time.monotonic()
    run_step(step, lab.run_on, saved, first=1 if exercise else 0)
    took = time.monotonic() - t0
    t1 = time.monotonic()
    after = lab.check(step, "--no-allure", "-q")
    lab.timings.append((step.number, took, time.monotonic() - t1))
    assert after.returncode == 0, f"step {step.number}'s check fails after the step:\n{after.stdout[-4000:]}"


def test_a_wrong_command_in_the_guide_fails_its_step_naming_it(bare_lab: BareLab, tmp_path: Path) -> None:
    """The guide's text is what runs: a copy with etcd's client port changed fails at step 3.1."""
    copy = tmp_path / "suites"
    shutil.copytree(REPO / "suites" / "lab3", copy / "lab3", ignore=shutil.ignore_patterns("__pycache__"))
    readme = copy / "lab3" / "README.md"
    readme.write_text(
        readme.read_text().replace(
            '--listen-client-urls "http://$NODE_IP:2379', '--listen-client-urls "http://$NODE_IP:2479'
        )
    )
    step = guides(copy)["lab3"][0]
    try:
        with pytest.raises(StepFailed) as failed:
            run_step(step, bare_lab.run_on, {})
        assert "step 3.1" in failed.value.message and "etcdctl endpoint health --cluster" in failed.value.message, (
            failed.value.message
        )
        assert "lab3/README.md:" in failed.value.hint
    finally:  # back to the starting state: no etcd, no data
        for node in ("node1", "node2", "node3"):
            bare_lab.run_on(node, "pkill -x etcd || true; sleep 0.5; rm -rf /var/lib/etcd/etcd*")


def test_the_guides_lead_a_bare_lab_to_a_green_conformance(bare_lab: BareLab) -> None:
    all_guides = guides(REPO / "suites")
    walked = []
    for lab in LABS:
        for step in all_guides[lab]:
            if not bare_lab.walks(step):
                continue
            walk(bare_lab, step)
            walked.append(step.number)
    print("walked: " + " ".join(walked))
    for number, commands, check in bare_lab.timings:
        print(f"step {number}: commands {commands:.1f} s, check {check:.1f} s")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites",
            "-n",
            "4",
            "--lab-config",
            str(bare_lab.config),
            "-p",
            "no:cacheprovider",
            "--no-allure",
            "-q",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-5000:]
