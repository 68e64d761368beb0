"""The node control layer on the real 3-node lab: crash/boot, partition/heal, freeze/thaw, engine pause.

Each fault is checked from outside, the way a check would see it: through the swarm's view and
through the etcd forwarder.
"""

from __future__ import annotations

import time

import docker

from pytest_workshop.components import etcd as etcd_component
from pytest_workshop.components import waiting
from pytest_workshop.config import load_file


def node_state(lab, node, via="node1"):
    client = docker.DockerClient(base_url=lab.lab.node_spec(via).host, timeout=5)
    try:
        for n in client.nodes.list():
            if n.attrs["Description"]["Hostname"] == node:
                manager = n.attrs.get("ManagerStatus") or {}
                return n.attrs["Status"]["State"], manager.get("Reachability", "")
    except Exception:
        return None, None
    finally:
        client.close()
    return None, None


def wait_for(predicate, timeout):
    """Seconds until ``predicate`` held (fails the test if it did not within ``timeout``)."""
    t0 = time.monotonic()
    waiting.wait_for("the condition did not hold", predicate, timeout, step=0.2)
    return time.monotonic() - t0


def test_partition_and_heal_a_node(healthy_lab):
    cfg = load_file(healthy_lab.config)
    etcd = etcd_component.EtcdClient(cfg.etcd, cfg.timeouts)
    node3 = healthy_lab.lab.member("node", "node3")
    try:
        node3.partition()
        # from the host, node3's etcd member is cut off too (the forwarder sits on the lab switch)
        ok, why = etcd.health(cfg.etcd.endpoints[2])
        assert not ok, why
        wait_for(lambda: node_state(healthy_lab, "node3")[1] == "unreachable", 40)
        status = {n["name"]: n for n in healthy_lab.lab.status()["nodes"]}
        assert status["node3"]["machine"] == "partitioned"
        node3.heal()
        wait_for(lambda: node_state(healthy_lab, "node3") == ("ready", "reachable"), 40)
        wait_for(lambda: etcd.health(cfg.etcd.endpoints[2])[0], 20)
    finally:
        node3.heal()
        etcd.close()


def test_freeze_and_thaw_a_node(healthy_lab):
    node2 = healthy_lab.lab.member("node", "node2")
    node2.pause()
    try:
        assert node2.is_paused()
        assert {n["name"]: n for n in healthy_lab.lab.status()["nodes"]}["node2"]["machine"] == "frozen"
        # a hung manager is not Down but Unreachable: the others cannot tell hung from slow
        wait_for(lambda: node_state(healthy_lab, "node2")[1] == "unreachable", 40)
    finally:
        node2.resume()
    wait_for(lambda: node_state(healthy_lab, "node2") == ("ready", "reachable"), 40)


def test_crash_and_boot_a_node(healthy_lab):
    node3 = healthy_lab.lab.member("node", "node3")
    node3.kill()
    assert not node3.is_running()
    assert not healthy_lab.lab.member("etcd", "etcd3").is_running()  # everything on the machine died
    wait_for(lambda: node_state(healthy_lab, "node3")[0] == "down", 40)
    node3.start()
    assert healthy_lab.lab.member("etcd", "etcd3").is_running()
    wait_for(lambda: node_state(healthy_lab, "node3") == ("ready", "reachable"), 40)


def test_pause_an_engine(healthy_lab):
    engine = healthy_lab.docker_engine("node2")
    engine.pause()
    try:
        assert engine.is_paused()
        assert {n["name"]: n for n in healthy_lab.lab.status()["nodes"]}["node2"]["docker"] == "paused"
    finally:
        engine.resume()
    assert not engine.is_paused()
