"""`workshop lab up | status | down` on a lab of its own: idempotent, repairs a crashed lab, leaves nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_workshop.lab import EmbeddedLab
from pytest_workshop.lab.process import ProcessRecord, is_ours

LIFE_DIR = Path("/var/tmp/workshop-lab-lifecycle")
ARGS = ["--dir", str(LIFE_DIR)]
UP = [
    "--bridge",
    "wslife0",
    "--bridge-cidr",
    "10.217.0.1/24",
    "--address-pool",
    "10.218.0.0/16",
    "--etcd-port-base",
    "25790",
]


def workshop(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_workshop.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def life_lab(tmp_path):
    env_ports = {"WORKSHOP_LAB_DIR": str(LIFE_DIR)}
    os.environ.update(env_ports)
    yield tmp_path
    workshop("lab", "down", *ARGS)


def traces(state: dict) -> dict[str, list[str]]:
    """What a lab could leave behind: live processes, mounts, its bridge, its directory."""
    procs = [m["process"] for m in state["etcd"]["members"]] + [state["docker"]["process"]]
    from pytest_workshop.lab.docker_engine import pool_bridges

    bridges = [state["docker"]["spec"]["bridge"], *pool_bridges(state["docker"]["spec"]["address_pool"])]
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if str(LIFE_DIR) in line]
    return {
        "processes": [str(p["pid"]) for p in procs if is_ours(ProcessRecord.from_json(p))],
        "mounts": mounts,
        "bridges": [b for b in bridges if Path(f"/sys/class/net/{b}").exists()],
        "state": [str(LIFE_DIR / "state.json")] if (LIFE_DIR / "state.json").exists() else [],
    }


def test_up_status_down(life_lab):
    config = life_lab / "lab.toml"
    # the lab's own ports must not collide with the shared test lab or a user's lab
    os.environ["WORKSHOP_LAB_DIR"] = str(LIFE_DIR)
    from pytest_workshop.lab import LabSettings

    lab = EmbeddedLab(LIFE_DIR)
    lab.up(LabSettings(name="life", etcd_client_base=25790, etcd_peer_base=25800, bridge="wslife0",
                       bridge_cidr="10.217.0.1/24", address_pool="10.218.0.0/16"), config)  # fmt: skip
    assert config.read_text().startswith("# written by `workshop lab up`")
    again = lab.up(LabSettings(name="life"), config)
    assert again == {"already_running": True}

    status = workshop("lab", "status", "--json", *ARGS)
    data = json.loads(status.stdout)
    assert status.returncode == 0 and data["state"] == "up"
    assert [m["health"] for m in data["etcd"]] == ["healthy"] * 3 and data["docker"]["health"] == "healthy"
    human = workshop("lab", "status", *ARGS).stdout
    assert "etcd1" in human and "healthy" in human

    import docker

    client = docker.DockerClient(base_url=f"unix://{LIFE_DIR}/docker.sock", timeout=10)
    client.networks.create("left-behind")  # a user network: dockerd keeps its br- bridge when it stops
    client.close()
    state = lab.load()
    assert all(traces(state).values()) and len(traces(state)["bridges"]) == 2
    down = workshop("lab", "down", *ARGS)
    assert down.returncode == 0 and "stopped dockerd" in down.stdout
    assert not any(traces(state).values()), traces(state)
    assert not config.exists()
    assert workshop("lab", "down", *ARGS).stdout.strip() == "nothing to stop"


def test_up_repairs_a_crashed_lab(life_lab):
    from pytest_workshop.lab import LabSettings

    config = life_lab / "lab.toml"
    lab = EmbeddedLab(LIFE_DIR)
    settings = LabSettings(name="life", etcd_client_base=25790, etcd_peer_base=25800, bridge="wslife0",
                           bridge_cidr="10.217.0.1/24", address_pool="10.218.0.0/16")  # fmt: skip
    lab.up(settings, config)
    crashed = lab.load()
    lab.member("docker", "dockerd").kill()
    lab.member("etcd", "etcd1").kill()
    assert workshop("lab", "status", *ARGS).returncode == 1  # degraded
    result = lab.up(settings, config)
    assert "seconds" in result and lab.is_up()
    assert not traces(crashed)["processes"]
    lab.down()
    assert not any(traces(lab.load() or crashed).values())


def test_up_refuses_overlapping_ranges(life_lab):
    result = workshop("lab", "up", *ARGS, "--config", str(life_lab / "lab.toml"), *UP, "--bridge-cidr", "127.0.0.2/8")
    assert result.returncode == 1
    assert "overlaps loopback" in result.stderr and "hint:" in result.stderr and "Traceback" not in result.stderr
    assert not (LIFE_DIR / "state.json").exists()


def test_up_refuses_ports_in_use(life_lab, healthy_lab):
    # the shared test lab holds 24791..: a second lab on the same ports must say so, not crash later
    result = workshop("lab", "up", *ARGS, "--config", str(life_lab / "lab.toml"), *UP, "--etcd-port-base", "24790")
    assert result.returncode == 1
    assert "24791" in result.stderr and "already in use" in result.stderr and "--etcd-port-base" in result.stderr


def test_up_never_takes_over_an_existing_interface(life_lab, healthy_lab):
    result = workshop("lab", "up", *ARGS, "--config", str(life_lab / "lab.toml"), *UP, "--bridge", "wstest0")
    assert result.returncode == 1 and "wstest0 already exists" in result.stderr
    assert Path("/sys/class/net/wstest0").exists()  # the test lab's bridge is untouched
