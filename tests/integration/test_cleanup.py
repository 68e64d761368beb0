"""Nothing leaks: the janitor, Ctrl-C during a run, a killed run, a crashed xdist worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_workshop.components import docker as docker_component
from pytest_workshop.components import etcd as etcd_component
from pytest_workshop.components import waiting
from pytest_workshop.config import load_file
from pytest_workshop.run import ETCD_ROOT, LABEL_RUN, REGISTRY, Run, new_run_id


@pytest.fixture
def clients(healthy_lab):
    cfg = load_file(healthy_lab.config)
    docker = docker_component.connect(cfg.docker, cfg.timeouts)
    etcd = etcd_component.connect(cfg.etcd, cfg.timeouts)
    assert labelled(docker) == [], "a previous test left labelled containers"
    yield cfg, docker, etcd
    janitor(healthy_lab.config, "--all")  # whatever a failed test left must not spill into the next
    docker.close()
    etcd.close()


def labelled(docker) -> list[str]:
    return [
        c.attrs["Names"][0].lstrip("/")
        for c in docker.containers.list(all=True, filters={"label": LABEL_RUN}, sparse=True)
    ]


def dead_run() -> Run:
    """A run registered by a process that has ended (what a SIGKILLed pytest leaves)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    run = Run(new_run_id())
    run.register(pid=proc.pid)
    return run


def plant(docker, etcd, run: Run, image: str) -> None:
    docker.containers.create(image, ["true"], labels=run.labels, name=f"{run.name_prefix}planted")
    docker.networks.create(f"{run.name_prefix}net", labels=run.labels)
    docker.volumes.create(f"{run.name_prefix}vol", labels=run.labels)
    etcd.put(f"{run.etcd_prefix}k".encode(), b"v")


def janitor(config, *args):
    return subprocess.run(
        [sys.executable, "-m", "pytest_workshop.cli", "janitor", "--lab-config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_janitor_dry_run_then_dead_runs_then_all(clients, healthy_lab):
    cfg, docker, etcd = clients
    dead, live = dead_run(), Run(new_run_id())
    live.register()  # this test process: alive
    try:
        for run in (dead, live):
            plant(docker, etcd, run, cfg.docker.test_image)
        dry = janitor(healthy_lab.config, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"would remove docker container {dead.name_prefix}planted" in dry.stdout
        assert live.run_id not in dry.stdout
        assert f"{dead.name_prefix}planted" in labelled(docker)  # dry run removed nothing

        swept = janitor(healthy_lab.config)
        assert swept.returncode == 0, swept.stderr
        for kind in ("container", "network", "volume"):
            assert f"removed docker {kind} " in swept.stdout
        assert f"removed etcd 1 key(s) under {dead.etcd_prefix}" in swept.stdout
        assert labelled(docker) == [f"{live.name_prefix}planted"]
        assert etcd.get_prefix(dead.etcd_prefix.encode()) == []
        assert not (REGISTRY / f"{dead.run_id}.json").exists()

        everything = janitor(healthy_lab.config, "--all")
        assert everything.returncode == 0 and live.run_id in everything.stdout
        assert labelled(docker) == [] and etcd.get_prefix(ETCD_ROOT.encode(), keys_only=True) == []
    finally:
        live.unregister()


# A run that is still running when the test interrupts, kills or crashes it: each check holds a
# labelled container until RELEASE exists (a minute at most), and says so in HOLDING_DIR. A real
# check's own length is no guarantee: lab1's exec and restart checks once finished before the
# SIGINT came (rc 0).
HOLDING = """
import os, time

def hold(docker_resources, docker_test_image):
    c = docker_resources.run(docker_test_image, ["sleep", "120"])
    open(os.path.join(os.environ["HOLDING_DIR"], c.id), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.environ["RELEASE"]) and time.monotonic() < deadline:
        time.sleep(0.05)

def test_hold_one(docker_resources, docker_test_image):
    hold(docker_resources, docker_test_image)

def test_hold_two(docker_resources, docker_test_image):
    hold(docker_resources, docker_test_image)
"""


def start_holding(healthy_lab, tmp_path: Path, *args):
    """A run of two checks that each hold a labelled container until ``tmp_path / "release"`` exists."""
    (tmp_path / "test_holding.py").write_text(HOLDING)
    (tmp_path / "holding").mkdir()
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--lab-config",
            str(healthy_lab.config),
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_holding.py"),
            *args,
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "RELEASE": str(tmp_path / "release"), "HOLDING_DIR": str(tmp_path / "holding")},
        # SIGINT as a terminal gives it: a test run started in the background by a non-interactive
        # shell ignores SIGINT, the run would inherit that, and python keeps an ignored SIGINT
        # ignored (a CI run of mine did exactly that: the Ctrl-C test hung, or its run ended rc 0)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_holding(tmp_path: Path, count: int = 1) -> None:
    """Until ``count`` checks of start_holding's run hold their container (its start has returned)."""
    holding = tmp_path / "holding"
    waiting.wait_for(
        f"{count} holding check(s) did not start", lambda: len(list(holding.iterdir())) >= count, 60, step=0.05
    )


def test_ctrl_c_mid_run_leaves_nothing(clients, healthy_lab, tmp_path):
    _, docker, _ = clients
    proc = start_holding(healthy_lab, tmp_path)
    wait_for_holding(tmp_path)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out[-2000:]  # pytest's "interrupted"
    assert labelled(docker) == [], out[-2000:]


def test_killed_run_is_swept_by_the_next_run(clients, healthy_lab, tmp_path):
    _, docker, _ = clients
    before = set(labelled(docker))
    proc = start_holding(healthy_lab, tmp_path)
    wait_for_holding(tmp_path)
    left = sorted(set(labelled(docker)) - before)
    assert left, "the holding check's container is not labelled"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert set(left) <= set(labelled(docker))  # SIGKILL: no teardown ran
    nxt = healthy_lab.pytest("suites/lab1", "-k", "engine_answers")
    assert nxt.returncode == 0, nxt.stdout[-2000:]
    assert labelled(docker) == []


def test_crashed_xdist_worker_leaves_nothing(clients, healthy_lab, tmp_path):
    _, docker, _ = clients
    # --dist load: both workers run a check. (The plugin's own scheduling keeps one module on one
    # worker and shuts the other down; which one is a race, and killing the idle one proves
    # nothing: CI once saw exactly that.)
    proc = start_holding(healthy_lab, tmp_path, "-n", "2", "--dist", "load")
    wait_for_holding(tmp_path, 2)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert workers, "no xdist worker found"
    os.kill(int(workers[0]), signal.SIGKILL)
    (tmp_path / "release").touch()  # the other worker's check ends, and the run with it
    out, _ = proc.communicate(timeout=120)
    assert "replacing crashed worker" in out or "node down" in out, out[-2000:]  # xdist saw the crash
    assert labelled(docker) == [], out[-2000:]


def test_a_killed_runs_fault_is_named_by_the_next_run_and_restored_by_the_janitor(healthy_lab, tmp_path):
    """kill -9 of a lab6 run mid-fault: the fault stays injected. The next run says so in its header
    and at the end; `workshop janitor --dry-run` lists it; `workshop janitor` restores it."""
    from pytest_workshop.faults.journal import Journal

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is gone: the run that injected the fault died
    healthy_lab.lab.member("etcd", "etcd3").kill()
    entry = Journal("selftest").record(
        "etcd-follower-killed", {"component": "etcd", "members": ["etcd3"]}, pid=dead.pid
    )  # what the scenario journals
    try:
        nxt = healthy_lab.pytest("suites/lab3", "-k", "healthy")
        assert "FAULT IN FORCE: etcd-follower-killed (members ['etcd3']), injected by a run that died" in nxt.stdout
        assert "faults in force on this lab" in nxt.stdout and "workshop fix --all" in nxt.stdout
        janitor = [str(Path(sys.executable).parent / "workshop"), "janitor", "--lab-config", str(healthy_lab.config)]
        dry = subprocess.run([*janitor, "--dry-run"], capture_output=True, text=True, timeout=60)
        assert "would restore fault etcd-follower-killed" in dry.stdout, dry.stdout + dry.stderr
        assert not healthy_lab.lab.member("etcd", "etcd3").is_running()  # a dry run changes nothing
        done = subprocess.run(janitor, capture_output=True, text=True, timeout=120)
        assert "restored fault etcd-follower-killed" in done.stdout, done.stdout + done.stderr
        assert healthy_lab.lab.member("etcd", "etcd3").is_running()
        assert Journal("selftest").entries() == []
    finally:
        Journal("selftest").remove(entry)


def test_the_suites_test_image_is_ours_and_only_janitor_all_takes_it(healthy_lab):
    """The offline-built image has the project's own name and label: an attendee's busybox:1.36 is
    never shadowed, ordinary sweeps keep it (runs reuse it), `janitor --all` would remove it."""
    cfg = load_file(healthy_lab.config)
    client = docker_component.connect(cfg.docker, cfg.timeouts)
    try:
        # (other tests' `janitor --all` may have removed it: the fixture's own call makes it again)
        ref, _how = docker_component.ensure_test_image(client, cfg.docker)
        assert ref == "pytest-workshop/busybox:1.36"
        assert client.images.get(ref).labels.get("pytest-workshop.image") == "test"
        assert not [t for i in client.images.list() for t in i.tags if t.startswith("busybox:")]
    finally:
        client.close()
    janitor = [str(Path(sys.executable).parent / "workshop"), "janitor", "--lab-config", str(healthy_lab.config)]
    plain = subprocess.run([*janitor, "--dry-run"], capture_output=True, text=True, timeout=60)
    assert "test image" not in plain.stdout
    everything = subprocess.run([*janitor, "--dry-run", "--all"], capture_output=True, text=True, timeout=60)
    assert "pytest-workshop/busybox:1.36 (pytest-workshop's own, test)" in everything.stdout, everything.stdout
