"""A run killed with SIGKILL half-way leaves what it made and what it changed. The next plain run
removes the first (every component the killed run touched, not only the first one it sweeps) and
undoes the second (a check's own change, not an instructor's fault)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_workshop.components import docker as docker_component
from pytest_workshop.components.waiting import wait_for
from pytest_workshop.config import load_file
from tests.integration.leftovers import left_by

REPO = Path(__file__).resolve().parents[2]


def start(healthy_lab, *args: str) -> tuple[subprocess.Popen[str], str]:
    """A run of the suites in its own process group, and its run id (from its header)."""
    argv = [sys.executable, "-m", "pytest", "--lab-config", str(healthy_lab.config), "-p", "no:cacheprovider", *args]
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    seen = ""
    while "workshop run: " not in seen:
        line = proc.stdout.readline()
        assert line, seen
        seen += line
    return proc, re.search(r"workshop run: (\S+)", seen).group(1)  # type: ignore[union-attr]


def kill(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.nightly  # two lab5 runs, 25 s
def test_what_a_killed_lab5_run_made_is_gone_after_the_next_run(healthy_lab) -> None:
    cfg = load_file(healthy_lab.config)
    proc, killed = start(healthy_lab, "suites/lab5")
    # until it has made something on the Swarm, on kuryr's engine and in Neutron
    wait_for("the lab5 run made its deployments", lambda: len(left_by(cfg, killed)) >= 3, 90, step=1.0)
    kill(proc)
    assert left_by(cfg, killed), "SIGKILL: no teardown ran"
    again = healthy_lab.pytest("suites/lab5", timeout=300)
    assert again.returncode == 0, again.stdout[-3000:]
    assert left_by(cfg, killed) == []


@pytest.mark.nightly  # two lab2 runs, 22 s
def test_a_node_a_killed_lab2_run_drained_is_active_again_at_the_next_run(healthy_lab) -> None:
    cfg = load_file(healthy_lab.config)
    proc, _ = start(healthy_lab, "suites/lab2", "-k", "LAB2-12")
    manager = docker_component.connect(cfg.docker, cfg.timeouts)
    try:

        def drained() -> bool:
            return any(n.attrs["Spec"]["Availability"] == "drain" for n in manager.nodes.list())

        wait_for("LAB2-12 drained a node", drained, 120, step=0.2)
        kill(proc)
        time.sleep(1)
        assert drained(), "SIGKILL: the drain was never undone"
        again = healthy_lab.pytest("suites/lab2", timeout=300)
        assert again.returncode == 0, again.stdout[-3000:]
        assert "FAULT IN FORCE" not in again.stdout, again.stdout[:3000]
        assert not drained()
    finally:
        manager.close()
