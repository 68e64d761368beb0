"""lab4 (and lab1's OpenStack checks) against the test lab's real Keystone, Neutron/OVN and kuryr:
healthy, then with kuryr, ovn-controller or Keystone stopped."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from pytest_workshop.faults.matrix import verdicts

OPENSTACK_CHECKS = [
    "suites/lab4",
    "suites/lab1/test_docker.py::test_openstack_credentials",
    "suites/lab1/test_docker.py::test_openstack_networks",
]


def run(lab, tmp_path: Path, *args: str, timeout: float = 240):
    junit = tmp_path / "junit.xml"
    t0 = time.monotonic()
    result = lab.pytest(*args, f"--junitxml={junit}", timeout=timeout)
    return result, verdicts(junit), time.monotonic() - t0


def stop(lab, service: str) -> None:
    lab.lab.member("openstack", service).stop()


def test_lab4_passes_on_a_healthy_lab(healthy_lab, tmp_path):
    result, v, _ = run(healthy_lab, tmp_path, *OPENSTACK_CHECKS)
    assert result.returncode == 0, result.stdout[-3000:]
    assert len([c for c in v if c.startswith("LAB4-")]) >= 14
    assert set(v.values()) == {"PASS"}, v
    assert v["LAB1-13"] == v["LAB1-14"] == "PASS"


def test_credentials_stay_private(healthy_lab, tmp_path):
    """clouds.yaml and the service configs are root-only; lab.toml and the output carry no password."""
    from pytest_workshop.lab.openstack import read_passwords

    _machine, spec = healthy_lab.lab.openstack_specs()
    for f in [spec.clouds_yaml, *Path(spec.dir, "etc").iterdir(), Path(spec.dir, "passwords.json")]:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    passwords = read_passwords(spec).values()
    result, _, _ = run(healthy_lab, tmp_path, "suites/lab1", "-k", "openstack", "-v")
    text = healthy_lab.config.read_text() + result.stdout + result.stderr + (tmp_path / "junit.xml").read_text()
    assert "devstack-admin" in text  # the config names the clouds...
    assert not [p for p in passwords if p in text]  # ...never their passwords


def test_kuryr_stopped(healthy_lab, tmp_path):
    stop(healthy_lab, "kuryr")
    result, v, _ = run(healthy_lab, tmp_path, "suites/lab4")
    assert result.returncode == 1
    assert v["LAB4-05"] == v["LAB4-06"] == "FAIL", v
    assert {v[c] for c in ("LAB4-01", "LAB4-02", "LAB4-03", "LAB4-04")} == {"PASS"}, v
    assert "kuryr-libnetwork at http://127.0.0.1:23750" in result.stdout and "is not answering" in result.stdout
    assert "hint: start kuryr-libnetwork" in result.stdout


def test_ovn_controller_stopped(healthy_lab, tmp_path):
    stop(healthy_lab, "ovn-controller")
    result, v, _ = run(healthy_lab, tmp_path, "suites/lab4", "-k", "port_active or one_neutron")
    assert result.returncode == 1
    assert v == {"LAB4-07": "PASS", "LAB4-09": "FAIL"}, result.stdout[-3000:]
    assert "is still DOWN after" in result.stdout
    assert "ovn-northd running, ovn-sb running, ovn-controller stopped" in result.stdout  # what the lab can tell
    # the hint names the service the evidence shows stopped, not both
    assert "hint: start ovn-controller (DevStack: `sudo systemctl start ovn-controller`;" in result.stdout


def test_neutron_database_stopped_is_named(healthy_lab, tmp_path):
    """Found by hand: with MariaDB stopped, Neutron does not answer, and the failure named only
    Neutron. What the lab's control can tell is the cause: MariaDB."""
    stop(healthy_lab, "mariadb")
    result, v, _ = run(healthy_lab, tmp_path, "suites/lab4", "-k", "catalogue")
    assert result.returncode == 1
    assert v == {"LAB4-01": "FAIL"}, result.stdout[-3000:]
    assert (
        "Neutron at http://127.0.0.1:" in result.stdout
        and "(the lab's control reports mariadb stopped)" in result.stdout
    )
    assert "the lab's control reports mariadb stopped: start mariadb" in result.stdout
    assert "bug in the suite" not in result.stdout


def test_keystone_stopped_fails_every_check_fast(healthy_lab, tmp_path):
    stop(healthy_lab, "keystone")
    result, v, elapsed = run(healthy_lab, tmp_path, *OPENSTACK_CHECKS)
    assert result.returncode == 1
    assert set(v.values()) == {"FAIL"} and len(v) >= 16, v
    assert "Keystone at http://127.0.0.1:25000/v3 is not answering" in result.stdout
    assert "hint: start Keystone" in result.stdout
    assert elapsed < 30, f"lab4 took {elapsed:.1f} s with Keystone down"


def test_janitor_sweeps_the_kuryr_engine_and_neutron(healthy_lab):
    """A dead run's container on the kuryr engine and its tagged Neutron objects are swept."""
    from dataclasses import replace

    from pytest_workshop.components import docker as docker_component
    from pytest_workshop.components import openstack as openstack_component
    from pytest_workshop.components.openstack import RUN_TAG
    from pytest_workshop.config import load_file
    from tests.integration.test_cleanup import dead_run, janitor

    cfg = load_file(healthy_lab.config)
    dead = dead_run()
    engine = docker_component.connect(replace(cfg.docker, host=cfg.kuryr.docker_host), cfg.timeouts)
    conn = openstack_component.connect(cfg.openstack, cfg.timeouts, admin=True)
    try:
        engine.containers.create(cfg.docker.test_image, ["true"], labels=dead.labels, name=f"{dead.name_prefix}kc")
        sg = conn.network.create_security_group(name=f"{dead.name_prefix}sg")
        net = conn.network.create_network(name=f"{dead.name_prefix}net")
        for obj in (sg, net):
            conn.network.set_tags(obj, [f"{RUN_TAG}{dead.run_id}"])
        swept = janitor(healthy_lab.config)
        assert swept.returncode == 0, swept.stderr
        assert f"removed docker container {dead.name_prefix}kc" in swept.stdout
        assert f"removed neutron security group {dead.name_prefix}sg" in swept.stdout
        assert f"removed neutron network {dead.name_prefix}net" in swept.stdout
        assert conn.network.find_security_group(sg.id) is None and conn.network.find_network(net.id) is None
    finally:
        engine.close()
        conn.close()
