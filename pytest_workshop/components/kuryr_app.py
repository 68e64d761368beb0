"""Lab 5's reference app as plain containers on a kuryr network (the engine kuryr serves): its
instances' addresses are Neutron ports', which lab5 checks against what they registered, and a
security-group rule removed under it shows whether the frontend skips a backend it cannot reach."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_workshop.components.app_wire import APP_PORT, Registration, ask, read_registrations
from pytest_workshop.components.waiting import wait_until
from pytest_workshop.errors import WorkshopError

KURYR_REGISTRY_PREFIX = "/kuryr-services/"  # not Swarm services: kept apart from LAB5-06's registry


@dataclass
class KuryrApp:
    """The reference app as plain containers on a kuryr network: their addresses are Neutron
    ports'. Each container also joins Docker's "bridge" (lexically first: its default route) to
    reach etcd at the lab machines' addresses; the app's own traffic is on the kuryr network."""

    network: Any  # components.kuryr.KuryrNetwork
    stack: str
    backends: dict[str, Any]  # instance (the container's hostname) -> container
    frontend: Any

    @property
    def prefix(self) -> str:
        return f"{KURYR_REGISTRY_PREFIX}{self.stack}_backend/"

    def registrations(self, etcd: Any) -> dict[str, Registration]:
        return read_registrations(etcd, self.prefix)

    def registered(self, etcd: Any, within: float) -> dict[str, Registration]:
        """The registrations, once every backend container is registered (within ``within`` s)."""
        wait_until(lambda: set(self.registrations(etcd)) >= set(self.backends), within, step=0.3)
        registered = self.registrations(etcd)
        missing = sorted(set(self.backends) - set(registered))
        if missing:
            raise WorkshopError(
                f"backends on the kuryr network not registered after {within:g} s: {', '.join(missing)}",
                hint="they reach etcd over Docker's bridge network: check the engine's NAT and the etcd endpoints",
            )
        return registered

    def ask_frontend(
        self, path: str = "/", times: int = 1, seconds: float = 0, timeout: float = 3
    ) -> list[dict[str, Any]]:
        return ask(self.frontend, path, times, seconds, timeout)

    def port_problems(self, networks: Any, etcd: Any, within: float) -> list[str]:
        """Each backend's Neutron port (``networks``: the KuryrNetworkFactory that made the
        network), its status and its IPs, against the address it registered: what does not
        match, in words."""
        registered = self.registered(etcd, within)
        problems = []
        for name, container in sorted(self.backends.items()):
            port = networks.port_of(container, self.network)
            if port is None:
                problems.append(f"{name} has no Neutron port")
                continue
            port = networks.wait_port_status(port.id, "ACTIVE", within)
            ips = [ip["ip_address"] for ip in port.fixed_ips]
            if port.status != "ACTIVE":
                problems.append(f"{name}'s port {port.id} is {port.status}")
            if registered[name].address not in ips:
                problems.append(f"{name} registered {registered[name].address}, its port has {', '.join(ips)}")
        return problems

    def cut_off_one(self, networks: Any, etcd: Any, within: float) -> SecurityGroupNoticed:
        """One backend's port put in a security group whose only ingress rule allows the app's
        port; once the frontend is seen using it, the rule is removed: does the frontend notice
        (within 8 s) and skip it? The port keeps the group: remove the deployment afterwards."""
        n = networks.neutron.network
        registered = self.registered(etcd, within)
        name, victim = sorted(self.backends.items())[0]
        port = networks.port_of(victim, self.network)
        if port is None:
            raise WorkshopError(f"no Neutron port for {name}", hint="read kuryr's log: it creates the container's port")
        sg = networks.security_group(port.project_id)
        rule = n.create_security_group_rule(
            security_group_id=sg.id,
            direction="ingress",
            ethertype="IPv4",
            protocol="tcp",
            port_range_min=APP_PORT,
            port_range_max=APP_PORT,
        )
        n.update_port(port, security_group_ids=[sg.id])
        # as many requests as backends: the frontend's rotation starts each at the next backend, so
        # one of them starts at the victim (and, once it is cut off, waits the frontend's 1 s on it)
        served = wait_until(lambda: name in answered_by(self.ask_frontend(times=len(registered))), 8, step=0.3)
        found = SecurityGroupNoticed(name, bool(served))
        if not served:
            return found
        n.delete_security_group_rule(rule)

        def noticed() -> bool:
            found.answers = self.ask_frontend(times=len(registered), timeout=5)
            return name not in answered_by(found.answers)

        found.noticed = bool(wait_until(noticed, 8, step=0.3))
        return found


def deploy_on_kuryr(factory: Any, image: str, etcd_endpoints: tuple[str, ...], replicas: int = 2) -> KuryrApp:
    """Backends and a frontend on a new kuryr network (``factory``: a KuryrNetworkFactory)."""
    knet = factory.create()
    stack = factory.name("kapp").replace("-", "")
    common = {
        "ETCD_ENDPOINTS": ",".join(etcd_endpoints),
        "REGISTRY_PREFIX": KURYR_REGISTRY_PREFIX,
        "STACK": stack,
        "PORT": str(APP_PORT),
        "NODE": "devstack",
    }
    backends = {}
    for _ in range(replicas):
        env = {**common, "SERVICE_NAME": f"{stack}_backend", "ADVERTISE_SUBNET": knet.cidr, "TTL": "3"}
        c = factory.run(knet, ["python3", "/app/backend.py"], image=image, also=("bridge",), environment=env)
        backends[c.id[:12]] = c
    env = {**common, "SERVICE_NAME": f"{stack}_frontend", "BACKEND": "backend"}
    frontend = factory.run(knet, ["python3", "/app/frontend.py"], image=image, also=("bridge",), environment=env)
    return KuryrApp(knet, stack, backends, frontend)


@dataclass
class SecurityGroupNoticed:
    """What the frontend did when one backend's port lost its ingress rule (KuryrApp.cut_off_one)."""

    victim: str  # the backend whose port loses the frontend's ingress rule
    served_with_rule: bool  # it got requests while a rule allowed the app's port
    noticed: bool | None = None  # the frontend stopped using it within 8 s of the rule's removal
    answers: list[dict[str, Any]] = field(default_factory=list)  # the last round of requests


def answered_by(answers: list[dict[str, Any]]) -> set[str]:
    return {a["answered_by"] for a in answers if "answered_by" in a}
