"""The embedded lab's machines as the guide sees them: run a guide's block on a machine (through
its shell, or on the instructor's machine: this one), and run a step's check the way an attendee
types it. A real lab's machines: guide/machines.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pytest_workshop.guide import Step
from pytest_workshop.guide.machines import BLOCK_TIMEOUT_S, run_check, run_local
from pytest_workshop.lab.embedded import EmbeddedLab


class GuideMachines:
    def __init__(self, state_dir: Path, config: Path, cwd: Path) -> None:
        self.lab, self.config, self.cwd = EmbeddedLab(state_dir), config, cwd
        data = self.lab.current()
        self.machines = {n.name for n in data.node_specs} | ({"devstack"} if data.openstack else set())

    def run_on(self, machine: str, script: str) -> tuple[int, str]:
        """(exit status, what it printed) of ``script`` run by bash on ``machine``."""
        if machine == "instructor":
            return run_local(script, {"WORKSHOP_LAB_CONFIG": str(self.config)}, self.cwd)
        try:
            done = subprocess.run(
                self.lab.shell_argv(machine, ["bash", "-c", script]),
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT_S,
                cwd=self.cwd,
            )
        except subprocess.TimeoutExpired:
            return 124, f"no end within {BLOCK_TIMEOUT_S} s"
        return done.returncode, done.stdout + done.stderr

    def check(self, step: Step, *extra: str) -> subprocess.CompletedProcess[str]:
        """The step's check (``pytest suites/lab3 --step 3.1``) against this lab."""
        return run_check(step, ["--lab-config", str(self.config)], *extra)

    def check_passes(self, step: Step) -> bool:
        return self.check(step, "--no-allure", "-q").returncode == 0

    def walks(self, step: Step) -> bool:
        """A step this lab can take: its machines are here, and its check does not break the lab
        on purpose (the disruptive checks act through the lab's control, which knows the members
        the lab started, not the etcd an attendee started by hand: 6.5 is for the instructor's lab)."""
        here = all(m in self.machines or m == "instructor" for b in step.commands for m in b.machines)
        return here and "--allow-breakage" not in (step.check or "")
