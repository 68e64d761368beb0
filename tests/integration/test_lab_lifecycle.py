"""`workshop lab up | status | down` on a lab of its own: idempotent, repairs a crashed lab, leaves nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_workshop.lab import EmbeddedLab, LabSettings
from pytest_workshop.lab.process import is_ours
from pytest_workshop.lab.state import LabState

LIFE_DIR = Path("/var/tmp/workshop-lab-lifecycle")
ARGS = ["--dir", str(LIFE_DIR)]
UP = ["--prefix", "wsy", "--etcd-port-base", "25790", "--nodes", "2", "--etcd-members", "1"]
SETTINGS = LabSettings(name="life", nodes=2, managers=1, etcd_members=1, etcd_port_base=25790, prefix="wsy")


def workshop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_workshop.cli", *args], capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def life_lab(tmp_path):
    yield tmp_path
    workshop("lab", "down", *ARGS)


def stray_processes(marker: str) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            if (
                marker.encode() in (p / "cmdline").read_bytes()
                and (p / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
            ):
                found.append(p.name)
        except OSError:
            continue
    return found


def traces(state: LabState) -> dict[str, list[str]]:
    """What a lab could leave behind: processes, namespaces, cgroups, its state file."""
    prefix = state.settings.prefix
    return {
        "processes": [str(r.pid) for r in state.processes() if is_ours(r)],
        # anything else that mentions the lab's directory: helpers, launchers (but not zombies)
        "strays": stray_processes(str(LIFE_DIR)),
        "netns": [ns for ns in state.namespaces if Path(f"/run/netns/{ns}").exists()],
        "cgroups": [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{prefix}-n*")],
        # userspace OVS makes tap devices; they must die with the DevStack machine's namespace
        "host_links": [
            line
            for line in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
            if any(f" {name}:" in line or f" {name}@" in line for name in ("br-int", "ovs-netdev", "genev_sys_6081"))
        ],
        "openstack_dir": [str(LIFE_DIR / "openstack")] if (LIFE_DIR / "openstack").exists() else [],
        "state": [str(LIFE_DIR / "state.json")] if (LIFE_DIR / "state.json").exists() else [],
    }


def test_up_status_down(life_lab):
    config = life_lab / "lab.toml"
    lab = EmbeddedLab(LIFE_DIR)
    lab.up(SETTINGS, config)
    assert config.read_text().startswith("# written by `workshop lab up`")
    assert lab.up(SETTINGS, config) == {"already_running": True}

    status = workshop("lab", "status", "--json", *ARGS)
    data = json.loads(status.stdout)
    assert status.returncode == 0 and data["state"] == "up"
    assert [(n["name"], n["docker"], n["role"], n["state"]) for n in data["nodes"]] == [
        ("node1", "healthy", "manager", "ready"),
        ("node2", "healthy", "worker", "ready"),
    ]
    assert [m["health"] for m in data["etcd"]] == ["healthy"]
    human = workshop("lab", "status", *ARGS).stdout
    assert "node1" in human and "leader" in human and "etcd1" in human

    import docker

    client = docker.DockerClient(base_url=lab.node_spec("node1").host, timeout=10)
    client.containers.run(
        "pytest-workshop/busybox:1.36", ["sleep", "60"], detach=True
    )  # a container: cgroups to clean up
    client.close()
    state = lab.current()
    assert traces(state)["processes"] and traces(state)["netns"] and traces(state)["cgroups"]
    down = workshop("lab", "down", *ARGS)
    assert down.returncode == 0 and "stopped node1" in down.stdout
    assert not any(traces(state).values()), traces(state)
    assert not config.exists()
    assert workshop("lab", "down", *ARGS).stdout.strip() == "nothing to stop"


def test_up_repairs_a_crashed_lab(life_lab):
    config = life_lab / "lab.toml"
    lab = EmbeddedLab(LIFE_DIR)
    lab.up(SETTINGS, config)
    crashed = lab.current()
    lab.member("docker", "node1").pause()  # a paused daemon must not strand anything either
    lab.member("node", "node2").kill()
    lab.member("etcd", "etcd1").kill()
    assert workshop("lab", "status", *ARGS).returncode == 1  # degraded
    result = lab.up(SETTINGS, config)
    assert "seconds" in result and lab.is_up()
    assert not traces(crashed)["processes"]
    lab.down()
    assert not any(traces(crashed).values())


def test_up_refuses_a_loopback_swarm_pool(life_lab):
    result = workshop("lab", "up", *ARGS, "--config", str(life_lab / "lab.toml"), *UP, "--swarm-pool", "127.1.0.0/16")
    assert result.returncode == 1
    assert "overlaps loopback" in result.stderr and "hint:" in result.stderr and "Traceback" not in result.stderr
    assert not (LIFE_DIR / "state.json").exists()


def test_up_refuses_ports_in_use(life_lab, healthy_lab):
    # the shared test lab holds 24791..: a second lab on the same ports must say so, not crash later
    result = workshop("lab", "up", *ARGS, "--config", str(life_lab / "lab.toml"), *UP, "--etcd-port-base", "24790")
    assert result.returncode == 1
    assert "24791" in result.stderr and "already in use" in result.stderr and "--etcd-port-base" in result.stderr


def test_up_never_takes_over_another_labs_namespaces(life_lab, healthy_lab):
    result = workshop("lab", "up", *ARGS, "--config", str(life_lab / "lab.toml"), *UP, "--prefix", "wst")
    assert result.returncode == 1 and "wst-sw already exists" in result.stderr
    assert Path("/run/netns/wst-sw").exists()  # the test lab's switch is untouched


def test_bad_counts_are_one_line(life_lab):
    result = workshop("lab", "up", *ARGS, "--config", str(life_lab / "lab.toml"), *UP, "--managers", "4")
    assert result.returncode == 1 and "--managers 4 with 2 nodes" in result.stderr and "Traceback" not in result.stderr


def test_openstack_added_to_a_running_lab_and_removed_by_down(life_lab):
    """`up --with openstack` on a running lab adds the DevStack machine; `down` removes all of it."""
    config = life_lab / "lab.toml"
    lab = EmbeddedLab(LIFE_DIR)
    small = LabSettings(name="life", nodes=1, managers=1, etcd_members=1, etcd_port_base=25790, prefix="wsy")
    lab.up(small, config)
    result = workshop(
        "lab",
        "up",
        *ARGS,
        "--config",
        str(config),
        "--prefix",
        "wsy",
        "--etcd-port-base",
        "25790",
        "--nodes",
        "1",
        "--with",
        "openstack",
        "--keystone-port",
        "25100",
        "--neutron-port",
        "25101",
    )
    assert result.returncode == 0, result.stderr
    assert "OpenStack added in" in result.stdout
    text = config.read_text()
    assert "[openstack]" in text and "[kuryr]" in text and "clouds_yaml" in text
    data = json.loads(workshop("lab", "status", "--json", *ARGS).stdout)
    services = {s["name"]: s["state"] for s in data["openstack"]["services"]}
    assert services["keystone"] == services["neutron-api"] == services["kuryr"] == services["dockerd"] == "healthy"
    assert {s for s, state in services.items() if state == "stopped"} == set()
    human = workshop("lab", "status", *ARGS).stdout
    assert "devstack" in human and "http://127.0.0.1:25100/v3" in human
    state = lab.current()
    found = traces(state)
    assert found["processes"] and "wsy-n0" in found["netns"] and found["openstack_dir"]
    down = workshop("lab", "down", *ARGS)
    assert down.returncode == 0 and "stopped devstack" in down.stdout
    assert not any(traces(state).values()), traces(state)


def test_up_with_openstack_refuses_a_busy_port(life_lab):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = workshop(
            "lab",
            "up",
            *ARGS,
            "--config",
            str(life_lab / "lab.toml"),
            *UP,
            "--with",
            "openstack",
            "--keystone-port",
            str(port),
            "--neutron-port",
            "25101",
        )
    assert result.returncode == 1
    assert f"port(s) {port} on 127.0.0.1 are already in use" in result.stderr and "--keystone-port" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (LIFE_DIR / "state.json").exists()


def test_up_with_openstack_names_what_is_not_installed(life_lab):
    env = {**os.environ, "WORKSHOP_OPENSTACK_VENV": str(life_lab / "no-venv")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_workshop.cli",
            "lab",
            "up",
            *ARGS,
            "--config",
            str(life_lab / "lab.toml"),
            *UP,
            "--with",
            "openstack",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"in {life_lab / 'no-venv'} (the OpenStack virtualenv: run scripts/install)" in result.stderr
    assert "hint: run scripts/install" in result.stderr
    assert not (LIFE_DIR / "state.json").exists()
