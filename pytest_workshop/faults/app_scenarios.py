"""Breakages in lab5's domain: the microservices, their registry in etcd, and the network between
them. They act at the lab's level, not on one deployment, so they hold for any deployment of the
app — the attendee's, or the reference one a run deploys after the fault was injected:

- through each node's own Docker engine, a firewall rule in the node's network namespace (a
  short-lived container in the host network with NET_ADMIN, running the machine's own iptables: what
  an instructor with Docker access can do on any lab machine, embedded or real);
- through etcd, a key in the registry or the app's configuration.
Every firewall rule carries the comment ``pytest-workshop-fault:<scenario>``, which is how
``is_injected`` finds it and ``restore`` removes exactly it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from pytest_workshop.errors import WorkshopError
from pytest_workshop.faults.model import Acts, Data, FaultContext

COMMENT = "pytest-workshop-fault"
ETCD_CLIENT_PORT = 2379
VXLAN_PORT = 4789
# A registration no instance backs: not under a lease, for a container that never existed
GHOST_INSTANCE = "0badc0ffee00"


def _node_hosts(ctx: FaultContext) -> list[str]:
    return list(ctx.lab.swarm_hosts)


def _iptables(ctx: FaultContext, host: str, *args: str) -> str:
    """Run the machine's iptables in the node's network namespace, through the node's engine."""
    from pytest_workshop.components import docker

    assert ctx.lab.docker is not None
    cfg = replace(ctx.lab.docker, host=host)
    client = docker.connect(cfg, ctx.lab.timeouts)
    try:
        image, _ = docker.ensure_test_image(client, cfg)
        out = client.containers.run(
            image,
            ["chroot", "/host", "iptables", "-w", "5", *args],
            cap_add=["NET_ADMIN", "NET_RAW"],
            network_mode="host",
            volumes={"/": {"bind": "/host", "mode": "rw"}},
            remove=True,
            labels={COMMENT: "iptables"},
        )
        return bytes(out).decode(errors="replace")
    except Exception as e:
        raise WorkshopError(
            f"iptables through the engine at {host} failed: {str(e)[:200]}",
            hint="the fault needs containers with NET_ADMIN in the host network, and iptables on the lab machine",
        ) from e
    finally:
        client.close()


def _rules(scenario: str) -> dict[str, list[list[str]]]:
    tag = ["-m", "comment", "--comment", f"{COMMENT}:{scenario}", "-j", "DROP"]
    if scenario == "app-etcd-cut-off":
        # containers leave through docker_gwbridge: to this node's etcd (INPUT) and the others' (FORWARD)
        match = ["-i", "docker_gwbridge", "-p", "tcp", "--dport", str(ETCD_CLIENT_PORT)]
        return {"INPUT": [match + tag], "FORWARD": [match + tag]}
    if scenario == "app-overlay-dropped":
        return {
            "INPUT": [["-p", "udp", "--dport", str(VXLAN_PORT), *tag]],
            "OUTPUT": [["-p", "udp", "--dport", str(VXLAN_PORT), *tag]],
        }
    raise ValueError(scenario)


def firewall(scenario: str, nodes: str) -> Acts:
    """choose / inject / restore / is_injected for a DROP rule on all nodes or on the last one."""

    def choose(ctx: FaultContext) -> Data:
        hosts = _node_hosts(ctx)
        return {"hosts": hosts if nodes == "all" else hosts[-1:], "scenario": scenario}

    def inject(ctx: FaultContext, data: Data) -> None:
        for host in data["hosts"]:
            for chain, rules in _rules(data["scenario"]).items():
                for rule in rules:
                    _iptables(ctx, host, "-I", chain, *rule)

    def restore(ctx: FaultContext, data: Data) -> None:
        for host in data["hosts"]:
            for chain, rules in _rules(data["scenario"]).items():
                for rule in rules:
                    while f"{COMMENT}:{data['scenario']}" in _iptables(ctx, host, "-S", chain):
                        _iptables(ctx, host, "-D", chain, *rule)

    def injected(ctx: FaultContext, data: Data) -> bool:
        return any(
            f"{COMMENT}:{data['scenario']}" in _iptables(ctx, host, "-S", chain)
            for host in data["hosts"]
            for chain in _rules(data["scenario"])
        )

    return Acts(choose, inject, restore, injected)


def _etcd(ctx: FaultContext) -> Any:
    from pytest_workshop.components import etcd

    assert ctx.lab.etcd is not None
    return etcd.connect(ctx.lab.etcd, ctx.lab.timeouts)


def etcd_key(key_of: Any, value_of: Any) -> Acts:
    """A key put in etcd (no lease: it stays until restored), and deleted again."""

    def choose(ctx: FaultContext) -> Data:
        return {"key": key_of(ctx), "value": value_of(ctx)}

    def inject(ctx: FaultContext, data: Data) -> None:
        with _etcd(ctx) as client:
            client.put(data["key"].encode(), data["value"].encode())

    def restore(ctx: FaultContext, data: Data) -> None:
        with _etcd(ctx) as client:
            client.delete(data["key"].encode())

    def injected(ctx: FaultContext, data: Data) -> bool:
        with _etcd(ctx) as client:
            return client.get(data["key"].encode()) is not None

    return Acts(choose, inject, restore, injected)


def _ghost_key(ctx: FaultContext) -> str:
    app = ctx.lab.app
    return f"{app.registry_prefix}{app.stack}_{app.backend}/{GHOST_INSTANCE}"


def _ghost_value(ctx: FaultContext) -> str:
    return json.dumps(
        {"instance": GHOST_INSTANCE, "address": "10.0.9.99", "port": 8080, "node": "gone", "version": "1"}
    )


def _chaos_key(ctx: FaultContext) -> str:
    return f"{ctx.lab.app.config_prefix}chaos/hang-on-node"


def _last_node(ctx: FaultContext) -> str:
    return str(ctx.swarm_view().nodes[-1].hostname)


def stale_registration() -> Acts:
    """A backend registration no instance backs, not under a lease."""
    return etcd_key(_ghost_key, _ghost_value)


def zombies_on_last_node() -> Acts:
    """The app's chaos key: backends on the last node stay registered but stop answering."""
    return etcd_key(_chaos_key, _last_node)
