"""The systemd control's partition rules against a real iptables, in a network namespace of the
test's own (nothing touches the host's rules): real iptables must accept them (the comment with
spaces), and Swarm is cut on UDP too (gossip 7946, VXLAN 4789)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_workshop.faults.systemd import SystemdControl


class NamespaceHost:
    """A testinfra local host whose commands run inside one network namespace."""

    def __init__(self, namespace: str) -> None:
        import testinfra

        self.namespace = namespace
        self.local = testinfra.get_host("local://")

    def run(self, command: str, *args: str) -> Any:
        return self.local.run(f"ip netns exec {self.namespace} " + command, *args)


@pytest.fixture
def namespace() -> Iterator[str]:
    if os.geteuid() != 0 or not shutil.which("iptables"):
        pytest.fail("this test needs root and iptables (scripts/install installs it)")
    name = f"wst-ipt-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def rules(namespace: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", namespace, "iptables", "-S"], capture_output=True, text=True, check=True
    ).stdout


def test_partition_and_heal_with_real_iptables(namespace: str) -> None:
    control = SystemdControl("local://", host=NamespaceHost(namespace))
    docker = control.member("docker", "docker")
    docker.partition()
    listed = rules(namespace)
    assert docker.is_partitioned()
    for proto, port in (("tcp", 2377), ("tcp", 7946), ("udp", 7946), ("udp", 4789)):
        assert (
            f'-A INPUT -p {proto} -m {proto} --dport {port} -m comment --comment "pytest-workshop partition docker" -j DROP'
            in listed
        ), listed
    docker.partition()  # idempotent: no rule twice
    assert rules(namespace).count("--dport 4789") == 2  # INPUT and OUTPUT once each
    etcd = control.member("etcd", "etcd")
    etcd.partition()
    docker.heal()
    assert not docker.is_partitioned() and etcd.is_partitioned()
    etcd.heal()
    assert "pytest-workshop" not in rules(namespace)
