"""Lab 4: Kuryr and Neutron with DevStack — Docker networks whose addresses, ports and security
groups are Neutron's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from pytest_workshop.api import CheckFailed, experiment, wait_until

pytestmark = pytest.mark.workshop_lab("lab4", "Lab 4: Kuryr and Neutron", requires=["openstack", "kuryr"])

PORT_ACTIVE_WITHIN = 15.0  # s; ovn-controller binds a port well under a second when it is healthy
HINT_OVN = (
    "ovn-controller binds ports on the chassis: check it runs and is connected "
    "(DevStack: `sudo systemctl status ovn-controller`; `sudo ovs-vsctl show` lists br-int)"
)
HINT_PORT_DOWN = (
    "a port goes ACTIVE once ovn-northd has written it to OVN's southbound database and ovn-controller "
    "has bound it on this chassis: `sudo ovn-appctl -t ovn-controller connection-status` says whether "
    "ovn-controller reaches that database, `sudo ovn-sbctl show` lists the chassis and its ports"
)


@pytest.fixture(scope="module", autouse=True)
def _keystone(openstack):
    """Every lab4 check stands on Keystone: kuryr and Neutron authenticate every request there,
    so with Keystone down each check fails at once with Keystone's name, instead of some
    passing on cached state and others timing out."""
    return openstack


# Every kuryr network and container waits seconds on kuryr, Neutron and OVN: the shared pair and
# the experiments of LAB4-13, 14 and 15 start at the module's first check. The pair first: LAB4-06
# to 12 need it, and under load (-n 4) four side by side took 30 s to give the pair; the others
# begin once it is there and run while LAB4-06 to 12 look at it.
EXPERIMENT_BOUND_S = 120.0  # from the module's start; every call inside has its own, tighter bound


@experiment(bound=EXPERIMENT_BOUND_S, requires="kuryr", title="kuryr pair")
def pair_made(kuryr_networks_module):
    """One kuryr network with two containers on it."""
    f = kuryr_networks_module
    knet = f.create()
    with ThreadPoolExecutor(2) as starting:  # each waits on kuryr and Neutron: both at once
        c1, c2 = starting.map(lambda _: f.run(knet), range(2))
    return SimpleNamespace(factory=f, net=knet, c1=c1, c2=c2)


@pytest.fixture(scope="module")
def pair(pair_made):
    """The pair, shared by the checks that only look."""
    return pair_made.result()


@pytest.mark.check(
    "LAB4-01",
    "The catalogue lists identity and network endpoints",
    step="4.1",
    component="openstack",
    hint="register them in Keystone (`openstack endpoint list`); DevStack does this for enabled services",
)
def test_catalogue(devstack, record_property):
    missing = [t for t in ("identity", "network") if devstack.endpoint(t) is None]
    record_property(
        "note", ", ".join(f"{e.service_type} {e.url}" for e in devstack.endpoints if e.interface == "public")
    )
    assert not missing, f"no public {' and '.join(missing)} endpoint in the catalogue of cloud {devstack.cloud!r}"


@pytest.mark.check(
    "LAB4-02",
    "Keystone's and Neutron's public endpoints answer",
    step="4.1",
    component="openstack",
    hint="the catalogue points at a service that is down or at an address you cannot reach: "
    "check `openstack endpoint list` and the service (DevStack: `sudo systemctl status devstack@*`)",
)
def test_endpoints_answer(devstack, lab):
    answers = [devstack.endpoint_answers(service, lab.timeouts.request) for service in ("identity", "network")]
    problems = [detail for ok, detail in answers if not ok]
    assert not problems, "; ".join(problems)


@pytest.mark.check(
    "LAB4-03",
    "Neutron has the extensions kuryr needs (tags, subnet allocation)",
    step="4.1",
    component="openstack",
    hint="kuryr tags Neutron objects with Docker's ids and allocates from subnet pools: "
    "enable the tag and subnet_allocation extensions (ML2/OVN has both)",
)
def test_neutron_extensions(devstack, record_property):
    record_property("note", f"{len(devstack.extensions)} extensions")
    missing = []
    if not devstack.extensions & {"standard-attr-tag", "tag"}:
        missing.append("standard-attr-tag")
    if "subnet_allocation" not in devstack.extensions:
        missing.append("subnet_allocation")
    assert not missing, f"Neutron lacks {', '.join(missing)}"


@pytest.mark.check(
    "LAB4-04",
    "The OVN controller agent is alive",
    step="4.1",
    component="openstack",
    hint=HINT_OVN,
)
def test_ovn_agent_alive(devstack, record_property):
    record_property(
        "note", ", ".join(f"{a.agent_type}@{a.host}={'up' if a.alive else 'DOWN'}" for a in devstack.agents)
    )
    assert devstack.agents, "Neutron lists no agents (the admin cloud cannot see them, or none registered)"
    ovn = [a for a in devstack.agents if "ovn controller" in a.agent_type.lower()]
    assert ovn, "no OVN controller agent is registered: ovn-controller never connected to the southbound DB"
    dead = [a.host for a in ovn if not a.alive]
    assert not dead, f"OVN controller agent on {', '.join(dead)} is not alive"


@pytest.mark.check(
    "LAB4-05",
    "Docker finds the kuryr plugin and it answers its activation call",
    step="4.2",
    component="kuryr",
    hint="kuryr-libnetwork must run and /usr/lib/docker/plugins/kuryr/kuryr.spec must hold its URL "
    "(DevStack: `sudo systemctl status devstack@kuryr-libnetwork`)",
)
def test_kuryr_plugin_answers(kuryr_plugin, record_property):
    found = kuryr_plugin
    record_property("note", f"spec {found.spec_path} -> {found.url}; implements {', '.join(found.implements)}")
    if found.problem() is not None:
        raise found.failure()


@pytest.mark.check(
    "LAB4-06",
    "Docker creates a network with the kuryr network and IPAM drivers",
    step="4.3",
    component="kuryr",
    hint="Docker offers a plugin's drivers once it answers: check LAB4-05, then kuryr's log",
)
def test_docker_uses_kuryr_drivers(pair, kuryr_docker, lab):
    pair.net.docker.reload()
    attrs = pair.net.docker.attrs
    assert attrs["Driver"] == lab.kuryr.network_driver, f"network driver is {attrs['Driver']}"
    assert attrs["IPAM"]["Driver"] == lab.kuryr.ipam_driver, f"IPAM driver is {attrs['IPAM']['Driver']}"
    offered = kuryr_docker.info()["Plugins"]["Network"]
    assert lab.kuryr.network_driver in offered, f"`docker info` lists network plugins {offered}, not kuryr"


@pytest.mark.check(
    "LAB4-07",
    "The kuryr network is exactly one Neutron network, tagged with the Docker network's id",
    step="4.3",
    component="kuryr",
    hint="kuryr could not create or tag the Neutron network: read kuryr's log (Neutron errors show there)",
)
def test_one_neutron_network(pair, record_property):
    nets = pair.factory.neutron_networks(pair.net)
    record_property("note", ", ".join(f"{n.name} {n.id}" for n in nets))
    assert len(nets) == 1, f"{len(nets)} Neutron networks carry the tags of Docker network {pair.net.id[:12]}"
    assert nets[0].name == f"kuryr-net-{pair.net.id[:8]}", f"the Neutron network is named {nets[0].name}"


@pytest.mark.check(
    "LAB4-08",
    "Its subnet and subnet pool are kuryr-subnet-<cidr> and kuryrPool-<cidr>",
    step="4.3",
    component="kuryr",
    hint="kuryr's IPAM driver allocates from a Neutron subnet pool: read kuryr's log for the IPAM request",
)
def test_subnet_and_pool(pair):
    net = pair.factory.refresh(pair.net)
    assert net.subnet is not None, f"no Neutron subnet {net.cidr} on {net.neutron_network and net.neutron_network.name}"
    assert net.subnet.name == f"kuryr-subnet-{net.cidr}", f"the subnet is named {net.subnet.name}"
    assert net.subnetpool is not None, f"subnet {net.subnet.name} was not allocated from a subnet pool"
    assert net.subnetpool.name == f"kuryrPool-{net.cidr}", f"the pool is named {net.subnetpool.name}"


@pytest.mark.check(
    "LAB4-09",
    "A container's Neutron port (compute:kuryr) becomes ACTIVE",
    step="4.4",
    component="kuryr",
    hint=HINT_PORT_DOWN,
)
def test_port_active(pair, record_property, lab_service_state):
    port = pair.factory.port_of(pair.c1, pair.net)
    assert port is not None, f"no Neutron port carries the endpoint id of container {pair.c1.name}"
    assert port.device_owner == "compute:kuryr", f"the port's device_owner is {port.device_owner!r}"
    port = pair.factory.wait_port_status(port.id, "ACTIVE", PORT_ACTIVE_WITHIN)
    record_property("note", f"port {port.id} {port.status}")
    if port.status != "ACTIVE":
        # every service on the binding's way, with what the lab's control says of each
        binding = lab_service_state.path("port binding")
        raise CheckFailed(
            f"port {port.id} is still {port.status} after {PORT_ACTIVE_WITHIN:g} s: nothing bound it on the chassis ({binding.evidence})",
            hint=binding.hint(HINT_PORT_DOWN),
        )


@pytest.mark.check(
    "LAB4-10",
    "The port's IP and MAC are the container's",
    step="4.4",
    component="kuryr",
    hint="Docker and Neutron disagree about the endpoint: remove the container and run it again; "
    "if it persists, read kuryr's log",
)
def test_port_matches_interface(pair):
    ep = pair.factory.endpoint(pair.c1, pair.net)
    port = pair.factory.port_of(pair.c1, pair.net)
    assert port is not None, f"no Neutron port for container {pair.c1.name}"
    seen: dict[str, str] = {}

    def interface() -> tuple[str, str] | None:
        # what the container itself says; an exec the engine did not run (a busy engine, now and
        # then) is asked again rather than read as "no address"
        addr = pair.c1.exec_run(["ip", "-o", "-4", "addr", "show", "eth0"])
        link = pair.c1.exec_run(["ip", "-o", "link", "show", "eth0"])
        seen.update(
            addr=f"exit {addr.exit_code}: {addr.output.decode(errors='replace').strip()[:200]}",
            link=f"exit {link.exit_code}: {link.output.decode(errors='replace').strip()[:200]}",
        )
        if addr.exit_code != 0 or link.exit_code != 0:
            return None
        return addr.output.decode(), link.output.decode()

    answer = wait_until(interface, 3, step=0.3)
    addr, link = answer or ("", "")
    ip = next((w.split("/")[0] for w in addr.split() if "/" in w and "." in w), None)
    mac = link.split("link/ether ")[1].split()[0] if "link/ether " in link else None
    port_ip = port.fixed_ips[0]["ip_address"]
    assert ip == port_ip == ep["IPAddress"], (
        f"IP: container {ip}, Neutron {port_ip}, Docker {ep['IPAddress']} (`ip addr show eth0` in it: {seen.get('addr')})"
    )
    assert mac == port.mac_address == ep["MacAddress"], (
        f"MAC: container {mac}, Neutron {port.mac_address}, Docker {ep['MacAddress']} (`ip link show eth0` in it: {seen.get('link')})"
    )


@pytest.mark.check(
    "LAB4-11",
    "The port is bound (vif_type ovs) to this machine's chassis",
    step="4.4",
    component="kuryr",
    hint="the OVN chassis name (`ovs-vsctl get open . external_ids:hostname`) must equal the host kuryr "
    "runs on (`hostname`)",
)
def test_port_bound_here(pair, devstack):
    port = pair.factory.port_of(pair.c1, pair.net)
    assert port is not None, f"no Neutron port for container {pair.c1.name}"
    assert port.binding_vif_type == "ovs", f"the port's vif_type is {port.binding_vif_type!r} (binding failed)"
    chassis = {a.host for a in devstack.agents if "ovn controller" in a.agent_type.lower()}
    assert port.binding_host_id in chassis, f"bound to host {port.binding_host_id!r}; OVN chassis are {sorted(chassis)}"


@pytest.mark.check(
    "LAB4-12",
    "Two containers on a kuryr network reach each other",
    step="4.4",
    component="kuryr",
    hint=HINT_OVN,
)
def test_containers_reach_each_other(pair, lab_service_state):
    ip2 = pair.factory.endpoint(pair.c2, pair.net)["IPAddress"]
    if wait_until(lambda: pair.factory.ping(pair.c1, ip2), 10):
        return
    datapath = lab_service_state.path("datapath")
    raise CheckFailed(
        f"{pair.c1.name} cannot ping {pair.c2.name} at {ip2} over the kuryr network ({datapath.evidence})",
        hint=datapath.hint(HINT_OVN),
    )


@dataclass
class SecurityGroupSteps:
    allowed_with_rule: bool
    blocked_without_rule: bool | None = None  # None: not tried, the step before failed
    allowed_again: bool | None = None


@experiment(bound=EXPERIMENT_BOUND_S, requires="kuryr", title="security group")
def security_group(kuryr_networks_module, pair_made) -> SecurityGroupSteps:
    """Ping over the pair's network towards a container of its own (the pair's traffic is not
    touched), with an ingress ICMP rule, without it, and with it again."""
    f, shared = kuryr_networks_module, pair_made.result()
    knet, c1 = shared.net, shared.c1
    c2 = f.run(knet)
    port2 = f.port_of(c2, knet)
    if port2 is None:
        raise CheckFailed(f"no Neutron port for {c2.name}", hint="read kuryr's log: it creates the container's port")
    ip2 = f.endpoint(c2, knet)["IPAddress"]
    sg = f.security_group(port2.project_id)
    n = f.neutron.network
    rule = n.create_security_group_rule(security_group_id=sg.id, direction="ingress", ethertype="IPv4", protocol="icmp")
    n.update_port(port2, security_group_ids=[sg.id])
    steps = SecurityGroupSteps(allowed_with_rule=bool(wait_until(lambda: f.ping(c1, ip2), 8)))
    if steps.allowed_with_rule:
        n.delete_security_group_rule(rule)
        steps.blocked_without_rule = bool(wait_until(lambda: not f.ping(c1, ip2), 8))
    if steps.blocked_without_rule:
        n.create_security_group_rule(security_group_id=sg.id, direction="ingress", ethertype="IPv4", protocol="icmp")
        steps.allowed_again = bool(wait_until(lambda: f.ping(c1, ip2), 8))
    return steps


@pytest.mark.check(
    "LAB4-13",
    "Removing a security group's ingress rule blocks traffic; restoring it allows it again",
    step="4.5",
    component="kuryr",
    hint="security groups are enforced by OVN ACLs: check ovn-northd and ovn-controller run",
)
def test_security_group_enforced(security_group):
    steps = security_group.result()
    assert steps.allowed_with_rule, "ping fails even with an ingress ICMP rule"
    assert steps.blocked_without_rule, "ping still passes after the ingress rule was removed"
    assert steps.allowed_again, "ping stays blocked after the ingress rule was restored"


@dataclass
class ExistingNetwork:
    neutron_net_id: str  # the network made first, in Neutron
    used_by_kuryr: list[str]  # the Neutron networks tagged with the Docker network's id
    port_network_id: str | None  # where the container's port is


@experiment(bound=EXPERIMENT_BOUND_S, requires="kuryr", after="pair_made", title="existing network")
def existing_network(kuryr_networks_module) -> ExistingNetwork:
    """A Neutron network made first, then a Docker network over it and a container on that."""
    f = kuryr_networks_module
    cidr = f.free_cidr()
    net, _subnet = f.neutron_network(cidr)
    knet = f.create(cidr=cidr, neutron_net_id=net.id)
    tagged = [n.id for n in f.neutron_networks(knet)]
    port = f.port_of(f.run(knet), knet)
    return ExistingNetwork(net.id, tagged, port.network_id if port is not None else None)


@pytest.mark.check(
    "LAB4-14",
    "An existing Neutron network can back a Docker network (neutron.net.uuid)",
    step="4.6",
    component="kuryr",
    hint="pass both -o neutron.net.uuid=ID and --ipam-opt neutron.net.uuid=ID, with --subnet equal to "
    "the Neutron subnet's CIDR",
)
def test_existing_neutron_network(existing_network):
    found = existing_network.result()
    assert found.used_by_kuryr == [found.neutron_net_id], (
        f"kuryr used Neutron network(s) {found.used_by_kuryr}, not {found.neutron_net_id}"
    )
    assert found.port_network_id == found.neutron_net_id, (
        f"the container's port is on {found.port_network_id}, not on the existing network"
    )


@dataclass
class Removal:
    port: str | None  # the container's Neutron port (None: it had none)
    port_gone: bool = False  # within 10 s of the disconnect
    left: list[str] | None = None  # what Neutron still holds 10 s after the network's removal


@experiment(bound=EXPERIMENT_BOUND_S, requires="kuryr", after="pair_made", title="removal")
def removal(kuryr_networks_module) -> Removal:
    """A container disconnected from a new kuryr network, then the network removed."""
    f = kuryr_networks_module
    knet = f.create()
    c = f.run(knet)
    port = f.port_of(c, knet)
    found = Removal(port.id if port is not None else None)
    if port is None:
        return found
    f.disconnect(c, knet)
    # every poll is a Neutron call, and Neutron is the busiest process of a parallel run: 2 a second
    found.port_gone = bool(wait_until(lambda: not f.neutron.network.find_port(port.id), 10, step=0.5))
    knet.docker.remove()
    left = wait_until(lambda: not f.leftovers(knet), 10, step=0.5) or f.leftovers(knet)
    found.left = [] if left is True else list(left)
    return found


@pytest.mark.check(
    "LAB4-15",
    "Removing containers and the network leaves nothing in Neutron",
    step="4.7",
    component="kuryr",
    hint="kuryr failed to delete its ports, subnet or pool: read kuryr's log, then delete the leftovers "
    "with `openstack port/subnet/subnet pool/network delete`",
)
def test_nothing_left_in_neutron(removal):
    found = removal.result()
    assert found.port is not None, "the container got no Neutron port"
    assert found.port_gone, f"port {found.port} outlived the disconnect"
    assert not found.left, "left in Neutron: " + "; ".join(found.left or [])
