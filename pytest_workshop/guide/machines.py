"""Where a guide's commands run on a real lab: its machines over SSH (``[swarm] hosts`` and the
DevStack machine's engine, given as ``ssh://``), and a step's check the way an attendee types it,
against that lab. The embedded lab's machines are lab/guide_machines.py."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import WorkshopError
from pytest_workshop.guide import Step, suites_dir

BLOCK_TIMEOUT_S = 240


def check_argv(step: Step, lab_args: list[str], *extra: str) -> list[str]:
    """``pytest suites/lab3 --step 3.1`` as the guide says it, for this lab, from anywhere: the
    suites' folder is the installed one (or the checkout's)."""
    assert step.check is not None
    words = shlex.split(step.check)[1:]
    words = [str(suites_dir() / w.removeprefix("suites/")) if w.startswith("suites/") else w for w in words]
    return [sys.executable, "-m", "pytest", *words, *lab_args, "-p", "no:cacheprovider", *extra]


def run_check(step: Step, lab_args: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        check_argv(step, lab_args, *extra), capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S, cwd=os.getcwd()
    )


def run_local(script: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[int, str]:
    """A block of the instructor's, on this machine."""
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    try:
        done = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
            env={**os.environ, **(env or {}), "PATH": path},
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        return 124, f"no end within {BLOCK_TIMEOUT_S} s"
    return done.returncode, done.stdout + done.stderr


def ssh_targets(lab: LabConfig) -> dict[str, str]:
    """machine -> its ssh:// URL: node1, node2... from [swarm] hosts in order (node1 first from the
    testinfra [lab] host, the lab's shell, then the [docker] host: the same machine), devstack
    from [kuryr] docker_host. A machine none of whose URLs is ssh:// cannot take commands."""
    candidates = {f"node{i}": [host] for i, host in enumerate(lab.swarm_hosts, start=1)}
    candidates["node1"] = [lab.host, *candidates.get("node1", []), lab.docker.host if lab.docker else ""]
    if lab.kuryr and lab.kuryr.docker_host:
        candidates["devstack"] = [lab.kuryr.docker_host]
    chosen = {m: next((u for u in urls if u.startswith("ssh://")), urls[0]) for m, urls in candidates.items()}
    other = {m: u for m, u in chosen.items() if not u.startswith("ssh://")}
    if other:
        raise WorkshopError(
            f"{lab.source}: the guide's commands reach a machine over SSH, and "
            + ", ".join(f"{m}'s engine is {urlsplit(u).scheme}://" for m, u in other.items()),
            hint="give the machines' engines as ssh://USER@HOST in [swarm] hosts (and [kuryr] docker_host)",
        )
    return chosen


class SSHMachines:
    """A real lab's machines, each over ``ssh`` (BatchMode: keys and ~/.ssh/config, never a prompt)."""

    def __init__(self, lab: LabConfig, lab_args: list[str]) -> None:
        self.targets, self.lab_args = ssh_targets(lab), lab_args
        self.machines = set(self.targets)

    def run_on(self, machine: str, script: str) -> tuple[int, str]:
        if machine == "instructor":
            return run_local(script)
        url = urlsplit(self.targets[machine])
        who = f"{url.username}@{url.hostname}" if url.username else str(url.hostname)
        port = ["-p", str(url.port)] if url.port else []
        config = [arg for k, v in parse_qsl(url.query) if k == "ssh_config" for arg in ("-F", v)]  # testinfra's
        argv = ["ssh", *config, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *port, who, "bash -s"]
        try:
            done = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return 124, f"no end within {BLOCK_TIMEOUT_S} s"
        return done.returncode, done.stdout + done.stderr

    def check_passes(self, step: Step) -> bool:
        return run_check(step, self.lab_args, "--no-allure", "-q").returncode == 0
