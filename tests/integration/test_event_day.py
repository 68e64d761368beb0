"""Before and during the event, on a bare lab (the workshop's starting state): the readiness suite
passes, and each prerequisite broken on purpose fails its own check only; `workshop solve`
fast-forwards along the guide and changes nothing when run again; `workshop check --watch` ends
green once the attendee has done the step, and Ctrl-C mid-round leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_workshop.guide import step as guide_step
from pytest_workshop.guide.walk import ENV_FILE, run_step
from pytest_workshop.lab.guide_machines import GuideMachines

REPO = Path(__file__).resolve().parents[2]
EVENT_LAB_DIR = Path(os.environ.get("WORKSHOP_EVENT_LAB_DIR", "/var/tmp/workshop-lab-event"))
WORKSHOP = [sys.executable, "-m", "pytest_workshop.cli"]


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuideMachines]:
    from pytest_workshop.lab import EmbeddedLab, LabSettings

    config = tmp_path_factory.mktemp("event") / "lab.toml"
    lab = EmbeddedLab(EVENT_LAB_DIR)
    settings = LabSettings(name="event", prefix="wse", segment="10.251.5.0/24", etcd_port_base=25890, bare=True)
    lab.down()
    lab.up(settings, config)
    try:
        yield GuideMachines(EVENT_LAB_DIR, config, REPO)
    finally:
        lab.down()


def pytest_run(bare: GuideMachines, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "pytest", *args, "--lab-config", str(bare.config), "-p", "no:cacheprovider"]
    return subprocess.run([*argv, "--no-allure", "-q"], cwd=REPO, capture_output=True, text=True, timeout=300)


def workshop(bare: GuideMachines, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [*WORKSHOP, *args, "--lab-config", str(bare.config)]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)


def verdicts(output: str) -> dict[str, str]:
    return dict((cid, v) for v, cid in re.findall(r"^\s+(PASS|FAIL|SKIP)\s+(LAB\d-\d+)", output, re.M))


# --- readiness -------------------------------------------------------------------------------------


def on(bare: GuideMachines, machine: str, script: str) -> str:
    """What ``script`` prints on ``machine``, run as the attendee's shell there (lab.env loaded)."""
    status, out = bare.run_on(machine, f"set -a; . {ENV_FILE}; set +a\n{script}")
    assert status == 0, out
    return out


def restart_engine(bare: GuideMachines, node: str) -> None:
    engine = bare.lab.member("docker", node)
    engine.stop()
    engine.start()


def squat(bare: GuideMachines) -> Callable[[], object]:
    """Something else listening on Swarm's port 2377 on node1."""
    pid = on(bare, "node1", "setsid python3 -m http.server 2377 >/dev/null 2>&1 </dev/null & echo $!").strip()
    return lambda: on(bare, "node1", f"grep -q http.server /proc/{pid}/cmdline && kill {pid}")


def same_hostname(bare: GuideMachines) -> Callable[[], object]:
    on(bare, "node2", "hostname node1")
    return lambda: on(bare, "node2", "hostname node2")


def blocked_port(bare: GuideMachines) -> Callable[[], object]:
    on(bare, "node3", "iptables -I INPUT -p tcp --dport 2379 -j DROP")
    return lambda: on(bare, "node3", "iptables -D INPUT -p tcp --dport 2379 -j DROP")


def cloned_engine(bare: GuideMachines) -> Callable[[], object]:
    """node2's engine with node1's identity key, as on a VM cloned after Docker's first start."""
    nodes = EVENT_LAB_DIR / "nodes"
    own = (nodes / "node2" / "etc-docker" / "key.json").read_bytes()
    shutil.copy(nodes / "node1" / "etc-docker" / "key.json", nodes / "node2" / "etc-docker" / "key.json")
    restart_engine(bare, "node2")

    def undo() -> None:
        (nodes / "node2" / "etc-docker" / "key.json").write_bytes(own)
        restart_engine(bare, "node2")

    return undo


BREAKS = [
    (squat, "LAB0-07", "TCP 2377 (Swarm's cluster management) is held by python3"),
    (same_hostname, "LAB0-02", "share the hostname node1"),
    (blocked_port, "LAB0-08", "TCP 2379 (etcd's clients) to node3 from node1"),
    (cloned_engine, "LAB0-02", "share the Docker engine ID"),
]


def test_a_bare_lab_is_ready_and_each_unfit_prerequisite_fails_its_own_check(bare: GuideMachines) -> None:
    ready = pytest_run(bare, "suites/lab0")
    assert ready.returncode == 0, ready.stdout[-3000:]
    for make, check_id, words in BREAKS:
        undo = make(bare)
        try:
            broken = pytest_run(bare, "suites/lab0")
        finally:
            undo()
        found = verdicts(broken.stdout)
        failed = sorted(c for c, v in found.items() if v == "FAIL")
        assert broken.returncode == 1 and failed == [check_id], (make.__name__, failed, broken.stdout[-3000:])
        assert words in broken.stdout and "hint:" in broken.stdout, (make.__name__, broken.stdout[-3000:])
    again = pytest_run(bare, "suites/lab0")
    assert again.returncode == 0, again.stdout[-3000:]


# --- solve -----------------------------------------------------------------------------------------


def lab_state(bare: GuideMachines) -> str:
    """What the guide's building steps leave: the Swarm's nodes, etcd's members, the stack's services."""
    script = (
        "docker node ls --format '{{.Hostname}} {{.ManagerStatus}}' 2>&1; "
        "etcdctl member list 2>&1 | cut -d, -f3 | sort; docker service ls --format '{{.Name}} {{.Replicas}}' 2>&1"
    )
    return on(bare, "node1", script)


def test_solve_takes_a_lab_to_a_step_and_leaves_a_done_step_as_it_is(bare: GuideMachines) -> None:
    solved = workshop(bare, "solve", "lab2", "--step", "2.2")
    assert solved.returncode == 0, solved.stdout + solved.stderr
    assert "2.1 A swarm of three managers: ran" in solved.stdout, solved.stdout
    upto = pytest_run(bare, "suites/lab2", "--step", "2.1,2.2")
    assert upto.returncode == 0, upto.stdout[-3000:]
    later = pytest_run(bare, "suites/lab3", "--step", "3.1")  # the next step that builds: not done
    assert later.returncode == 1 and "guide step 3.1" in later.stdout, later.stdout[-3000:]
    before = lab_state(bare)
    twice = workshop(bare, "solve", "lab2", "--step", "2.2")
    assert twice.returncode == 0 and "2.1 A swarm of three managers: done already" in twice.stdout, twice.stdout
    assert lab_state(bare) == before


def test_watch_ends_green_once_the_attendee_has_done_the_step(bare: GuideMachines) -> None:
    argv = [*WORKSHOP, "check", "lab3", "--step", "3.1", "--watch", "--every", "1", "--lab-config", str(bare.config)]
    watching = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert watching.stdout is not None
        first = ""
        while "FAIL  LAB3-01" not in first and len(first) < 20000:  # the round shows the red check
            line = watching.stdout.readline()
            assert line, first
            first += line
        assert "== step 3.1" in first, first
        run_step(guide_step("3.1", REPO / "suites"), bare.run_on, {})  # the attendee types the step
        out, _ = watching.communicate(timeout=60)
    finally:
        watching.kill()
    assert watching.returncode == 0 and "step 3.1: all green" in out, out


def test_solve_of_a_whole_lab_then_its_checks_are_green_and_again_changes_nothing(bare: GuideMachines) -> None:
    solved = workshop(bare, "solve", "lab3")
    assert solved.returncode == 0, solved.stdout + solved.stderr
    assert pytest_run(bare, "suites/lab3").returncode == 0
    before = lab_state(bare)
    assert workshop(bare, "solve", "lab3").returncode == 0
    assert lab_state(bare) == before


def labelled(bare: GuideMachines) -> list[str]:
    """Whatever a run of the suites left on the Swarm: its labelled services, containers, networks."""
    found = []
    for what, field in (("service ls", ".Name"), ("ps -a", ".Names"), ("network ls", ".Name")):
        found += on(
            bare, "node1", f"docker {what} --filter label=pytest-workshop.run --format '{{{{{field}}}}}'"
        ).split()
    return found


def test_ctrl_c_mid_watch_leaves_nothing_behind(bare: GuideMachines) -> None:
    assert workshop(bare, "solve", "lab5", "--step", "5.1").returncode == 0
    replicas = on(
        bare, "node1", "docker service inspect registry-demo_backend --format '{{.Spec.Mode.Replicated.Replicas}}'"
    )
    argv = [*WORKSHOP, "check", "lab5", "--step", "5.4", "--watch", "--lab-config", str(bare.config)]
    watching = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(3.0)  # in the first round: LAB5-10 scales the attendee's backend up
    watching.send_signal(signal.SIGINT)
    out, _ = watching.communicate(timeout=60)
    assert watching.returncode == 130 and "all green" not in out, out
    assert labelled(bare) == [], out
    after = on(
        bare, "node1", "docker service inspect registry-demo_backend --format '{{.Spec.Mode.Replicated.Replicas}}'"
    )
    assert after == replicas, out
    registry = json.loads(on(bare, "node1", "etcdctl get /pytest-workshop/ --prefix --keys-only -w json"))
    assert not registry.get("kvs"), registry
