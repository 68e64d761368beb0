"""Lab 5 on kuryr: the reference app on a Docker network backed by Neutron, its instances
registered in etcd with the addresses Neutron gave their ports."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pytest_workshop.api import WorkshopError, experiment, wait_until

pytestmark = pytest.mark.workshop_lab("lab5", "Lab 5: Deploying microservices", requires=["swarm", "etcd"])

REGISTER_WITHIN_S = 10.0  # a running instance is registered, and its port ACTIVE
KURYR_EXPERIMENT_BOUND_S = 120.0  # from the module's start: the kuryr deployment, then LAB5-16, 17 and its removal


def answered_by(answers: list[dict]) -> set[str]:
    return {a["answered_by"] for a in answers if "answered_by" in a}


@experiment(bound=KURYR_EXPERIMENT_BOUND_S, requires="kuryr", title="kuryr ports")
def kuryr_ports(app_on_kuryr, kuryr_networks_module, etcd) -> list[str]:
    """Each backend on the kuryr network: its Neutron port, its status, its IPs against the
    address it registered. What does not match, in words."""
    deployed, f = app_on_kuryr.result(), kuryr_networks_module
    registered = deployed.registered(etcd, REGISTER_WITHIN_S)
    problems = []
    for name, container in sorted(deployed.backends.items()):
        port = f.port_of(container, deployed.network)
        if port is None:
            problems.append(f"{name} has no Neutron port")
            continue
        port = f.wait_port_status(port.id, "ACTIVE", REGISTER_WITHIN_S)
        ips = [ip["ip_address"] for ip in port.fixed_ips]
        if port.status != "ACTIVE":
            problems.append(f"{name}'s port {port.id} is {port.status}")
        if registered[name].address not in ips:
            problems.append(f"{name} registered {registered[name].address}, its port has {', '.join(ips)}")
    return problems


@pytest.mark.check(
    "LAB5-16",
    "On kuryr: every instance has an ACTIVE Neutron port whose IP is the address it registered",
    step="5.7",
    component="kuryr",
    hint="a DOWN port: ovn-controller does not bind it (lab4, LAB4-09); another IP: the service registered the wrong network's address (ADVERTISE_SUBNET)",
)
def test_kuryr_ports_are_the_registered_addresses(kuryr_ports):
    problems = kuryr_ports.result()
    assert not problems, "; ".join(problems)


@dataclass
class SecurityGroupNoticed:
    victim: str  # the backend whose port loses the frontend's ingress rule
    served_with_rule: bool  # it got requests while a rule allowed TCP 8080
    noticed: bool | None = None  # the frontend stopped using it within 8 s of the rule's removal
    answers: list[dict] = field(default_factory=list)  # the last round of requests


@experiment(bound=KURYR_EXPERIMENT_BOUND_S, requires="kuryr", after="kuryr_ports", title="kuryr security group")
def kuryr_security_group(app_on_kuryr, kuryr_networks_module, etcd, deferred_cleanup) -> SecurityGroupNoticed:
    """The ingress rule towards one backend removed from its port's security group. Then the
    kuryr deployment is removed in the background: nothing else uses it, and kuryr and Neutron
    take seconds to remove it."""
    deployed, f = app_on_kuryr.result(), kuryr_networks_module
    try:
        return security_group_noticed(deployed, f, etcd)
    finally:
        deferred_cleanup(f.cleanup)  # the module's own clean-up then finds nothing left


def security_group_noticed(deployed, f, etcd) -> SecurityGroupNoticed:
    n = f.neutron.network
    registered = deployed.registered(etcd, REGISTER_WITHIN_S)
    name, victim = sorted(deployed.backends.items())[0]
    port = f.port_of(victim, deployed.network)
    if port is None:
        raise WorkshopError(f"no Neutron port for {name}", hint="read kuryr's log: it creates the container's port")
    sg = f.security_group(port.project_id)
    rule = n.create_security_group_rule(
        security_group_id=sg.id,
        direction="ingress",
        ethertype="IPv4",
        protocol="tcp",
        port_range_min=8080,
        port_range_max=8080,
    )
    # The victim's port keeps this group: the deployment is removed right after.
    n.update_port(port, security_group_ids=[sg.id])
    # as many requests as backends: the frontend's rotation starts each at the next backend, so one
    # of them starts at the victim (and, once it is cut off, waits the frontend's 1 s on it)
    served = wait_until(lambda: name in answered_by(deployed.ask_frontend(times=len(registered))), 8, step=0.3)
    found = SecurityGroupNoticed(name, bool(served))
    if not served:
        return found
    n.delete_security_group_rule(rule)

    def noticed() -> bool:
        found.answers = deployed.ask_frontend(times=len(registered), timeout=5)
        return name not in answered_by(found.answers)

    found.noticed = bool(wait_until(noticed, 8, step=0.3))
    return found


@pytest.mark.check(
    "LAB5-17",
    "On kuryr: removing the security-group rule from frontend to a backend is noticed by the frontend",
    step="5.7",
    component="kuryr",
    timeout=60,
    hint="Neutron security groups are enforced by OVN ACLs (lab4, LAB4-13); the frontend must skip a backend it cannot reach, not fail the request",
)
def test_kuryr_security_group_noticed(kuryr_security_group):
    seen = kuryr_security_group.result()
    assert seen.served_with_rule, f"{seen.victim} gets no request even with an ingress rule for TCP 8080"
    assert seen.noticed, f"{seen.victim} still answers the frontend 8 s after its ingress rule was removed"
    failed = [a for a in seen.answers if "answered_by" not in a]
    assert not failed, (
        f"the frontend failed {len(failed)} of {len(seen.answers)} requests instead of skipping {seen.victim}"
    )
