"""Fault scenarios: what the workshop breaks on purpose, and which checks must notice.

The catalogue composes the acts of acts.py (members stopped, killed, paused, partitioned; a node
drained; etcd filled; credentials changed) and app_scenarios.py (lab5's firewall rules and
registry keys). model.py says what a scenario is.
"""

from __future__ import annotations

from pytest_workshop.components.waiting import wait_until
from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import WorkshopError
from pytest_workshop.faults import app_scenarios
from pytest_workshop.faults.acts import (
    a_follower_manager,
    all_but_first,
    an_etcd_follower,
    etcd_filled,
    etcd_leader,
    first,
    last,
    member_action,
    named,
    node_drained,
    swarm_leader,
    swarm_settled,
    two_managers_but_the_first_node,
    wrong_credentials,
)
from pytest_workshop.faults.model import Data, FaultContext, Scenario

__all__ = ["SCENARIOS", "Data", "FaultContext", "Scenario", "applicable", "get", "wait_restored"]

ETCD_ONE_DOWN = ("LAB3-01", "LAB3-03", "LAB3-04", "LAB3-14", "LAB6-12")
LAB4_ALL = tuple(f"LAB4-{i:02d}" for i in range(1, 16))
ENGINE_DOWN = ("LAB2-01", "LAB2-06", "LAB6-10")
NODE_DOWN = ("LAB2-01", "LAB3-01", "LAB6-10", "LAB6-12")

SCENARIOS: list[Scenario] = [
    Scenario(
        "docker-engine-stopped",
        "The Docker engine of the first node is stopped",
        component="docker",
        detected_by=("LAB1-01", "LAB1-05", "LAB2-01", "LAB6-10"),
        acts=member_action("docker", first("docker"), "stop", "start", swarm_settled),
    ),
    Scenario(
        "docker-engine-paused",
        "The first node's Docker engine hangs (SIGSTOP)",
        component="docker",
        detected_by=("LAB1-01", "LAB1-05", "LAB6-10"),
        acts=member_action("docker", first("docker"), "pause", "resume"),
    ),
    Scenario(
        "swarm-node-drained",
        "The last Swarm node is drained: no tasks run there",
        component="swarm",
        detected_by=("LAB2-03", "LAB6-11"),
        acts=node_drained(),
    ),
    Scenario(
        "swarm-leader-engine-killed",
        "The Swarm leader's engine is killed",
        component="swarm",
        detected_by=ENGINE_DOWN,
        acts=member_action("docker", swarm_leader, "kill", "start", swarm_settled),
    ),
    Scenario(
        "swarm-follower-engine-killed",
        "A manager that is not the leader loses its engine",
        component="swarm",
        detected_by=ENGINE_DOWN,
        acts=member_action("docker", a_follower_manager, "kill", "start", swarm_settled),
    ),
    Scenario(
        "swarm-two-managers-down",
        "Two of three managers are down: no quorum, no leader",
        component="swarm",
        detected_by=ENGINE_DOWN,
        acts=member_action("docker", two_managers_but_the_first_node, "kill", "start", swarm_settled),
    ),
    Scenario(
        "node-partitioned",
        "The last lab machine's network cable is pulled",
        component="swarm",
        detected_by=NODE_DOWN,
        acts=member_action("node", last("node"), "partition", "heal", swarm_settled),
    ),
    Scenario(
        "node-crashed",
        "The last lab machine loses power (everything on it dies)",
        component="swarm",
        detected_by=NODE_DOWN,
        acts=member_action("node", last("node"), "kill", "start", swarm_settled),
    ),
    Scenario(
        "etcd-follower-killed",
        "An etcd follower is killed",
        component="etcd",
        detected_by=ETCD_ONE_DOWN,
        acts=member_action("etcd", an_etcd_follower, "kill", "start"),
    ),
    Scenario(
        "etcd-leader-killed",
        "The etcd leader is killed (a new one is elected)",
        component="etcd",
        detected_by=ETCD_ONE_DOWN,
        acts=member_action("etcd", etcd_leader, "kill", "start"),
    ),
    Scenario(
        "etcd-quorum-lost",
        "Two of three etcd members are killed: no quorum",
        component="etcd",
        detected_by=("LAB3-01", "LAB3-04", "LAB3-07", "LAB6-12"),
        acts=member_action("etcd", all_but_first("etcd"), "kill", "start"),
    ),
    Scenario(
        "etcd-member-paused",
        "An etcd member hangs (SIGSTOP)",
        component="etcd",
        detected_by=("LAB3-01", "LAB3-03", "LAB6-12"),
        acts=member_action("etcd", last("etcd"), "pause", "resume"),
    ),
    Scenario(
        "etcd-member-partitioned",
        "An etcd member's peer traffic is dropped",
        component="etcd",
        detected_by=("LAB3-01",),
        acts=member_action("etcd", last("etcd"), "partition", "heal"),
    ),
    Scenario(
        "etcd-out-of-space",
        "etcd's database is full (NOSPACE alarm): it refuses writes",
        component="etcd",
        detected_by=("LAB3-06", "LAB3-07", "LAB6-12"),
        acts=etcd_filled(),
    ),
    Scenario(
        "kuryr-not-answering",
        "kuryr-libnetwork is stopped",
        component="kuryr",
        detected_by=("LAB4-05", "LAB4-06", "LAB6-14"),
        acts=member_action("openstack", named("kuryr"), "stop", "start"),
        needs=("openstack",),
    ),
    Scenario(
        "kuryr-paused",
        "kuryr-libnetwork hangs (SIGSTOP): Docker waits on it",
        component="kuryr",
        detected_by=("LAB4-05",),
        acts=member_action("openstack", named("kuryr"), "pause", "resume"),
        needs=("openstack",),
    ),
    Scenario(
        "ovn-controller-stopped",
        "ovn-controller is stopped: ports stay DOWN",
        component="openstack",
        detected_by=("LAB4-09", "LAB4-12"),
        acts=member_action("openstack", named("ovn-controller"), "stop", "start"),
        needs=("kuryr",),
    ),
    Scenario(
        "neutron-api-down",
        "The Neutron API is stopped",
        component="openstack",
        detected_by=("LAB1-14", "LAB4-02", "LAB4-03", "LAB6-13"),
        acts=member_action("openstack", named("neutron-api"), "stop", "start"),
    ),
    Scenario(
        "keystone-down",
        "Keystone is stopped: nothing authenticates",
        component="openstack",
        detected_by=("LAB1-13", "LAB1-14", *LAB4_ALL, "LAB6-13"),
        acts=member_action("openstack", named("keystone"), "stop", "start"),
    ),
    Scenario(
        "app-etcd-cut-off",
        "The app's containers cannot reach etcd (firewall on every node)",
        component="etcd",
        detected_by=("LAB5-03", "LAB5-07"),
        acts=app_scenarios.firewall("app-etcd-cut-off", "all"),
        needs=("swarm",),
    ),
    Scenario(
        "app-overlay-dropped",
        "Overlay (VXLAN) traffic to and from the last node is dropped",
        component="swarm",
        detected_by=("LAB5-07", "LAB5-15"),
        acts=app_scenarios.firewall("app-overlay-dropped", "last"),
        needs=("etcd",),
    ),
    Scenario(
        "app-stale-registration",
        "A backend registration outlives its instance (no lease)",
        component="etcd",
        detected_by=("LAB5-06",),
        acts=app_scenarios.stale_registration(),
        needs=("swarm",),
    ),
    Scenario(
        "app-backend-zombie",
        "Backends on the last node stay registered but stop answering",
        component="etcd",
        detected_by=("LAB5-07", "LAB5-15"),
        acts=app_scenarios.zombies_on_last_node(),
        needs=("swarm",),
    ),
    Scenario(
        "wrong-cloud-credentials",
        "The demo user's password changed; clouds.yaml has the old one",
        component="openstack",
        detected_by=("LAB1-13", "LAB1-14"),
        acts=wrong_credentials(),
    ),
]

BY_NAME = {s.name: s for s in SCENARIOS}


def get(name: str) -> Scenario:
    try:
        return BY_NAME[name]
    except KeyError:
        raise WorkshopError(f"no scenario {name!r}", hint="list them with `workshop break --list`") from None


def applicable(lab: LabConfig) -> list[Scenario]:
    return [s for s in SCENARIOS if lab.has(s.component) and all(lab.has(c) for c in s.needs)]


def wait_restored(ctx: FaultContext, scenario: Scenario, data: Data, timeout: float = 30) -> bool:
    return bool(wait_until(lambda: not scenario.is_injected(ctx, data), timeout, step=0.2))
