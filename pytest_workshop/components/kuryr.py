"""kuryr-libnetwork: Docker networks backed by Neutron, and how to find one side from the other.

kuryr's naming and tagging, as its own fullstack tests rely on (and research section 4 saw):
- Docker network ``<id>`` -> Neutron network ``kuryr-net-<id[:8]>`` tagged
  ``kuryr.net.uuid.lh:<id[:32]>`` and ``kuryr.net.uuid.uh:<id[32:]>``;
- subnet ``kuryr-subnet-<cidr>``, subnet pool ``kuryrPool-<cidr>``;
- an endpoint -> a port with ``device_owner = compute:kuryr``, tagged the same way with the
  endpoint id.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import ipaddress
import itertools
import os
import threading
from dataclasses import dataclass
from typing import Any

from pytest_workshop.components.explain import neutron_refusal, quote
from pytest_workshop.components.kuryr_probe import kuryr_failure, kuryr_refused, probe
from pytest_workshop.components.openstack import RUN_TAG
from pytest_workshop.components.service_log import Witness
from pytest_workshop.components.waiting import wait_until
from pytest_workshop.config.model import Timeouts
from pytest_workshop.errors import CheckFailed, ComponentUnavailable, WorkshopError

DEVICE_OWNER = "compute:kuryr"
HINT_SLOW = (
    "Docker waits on kuryr, Neutron and OVN: if kuryr-libnetwork's and Neutron's logs show the request "
    "completing late, the machine is overloaded: run fewer checks at once (-n) or raise [timeouts] {bound} "
    "in lab.toml; otherwise read those logs for the error"
)
CIDR_SPACE = ipaddress.IPv4Network("10.200.0.0/14")  # 1024 /24s to pick lab4's networks from


def id_tags(docker_id: str) -> list[str]:
    return [f"kuryr.net.uuid.lh:{docker_id[:32]}", f"kuryr.net.uuid.uh:{docker_id[32:]}"]


@dataclass
class KuryrNetwork:
    docker: Any  # docker-py Network
    cidr: str
    neutron_network: Any | None  # found by tags; None if kuryr made none
    subnet: Any | None
    subnetpool: Any | None
    existing: bool = False  # built on a Neutron network that existed before (neutron.net.uuid)

    @property
    def id(self) -> str:
        return str(self.docker.id)


class KuryrNetworkFactory:
    """Creates Docker networks with the kuryr drivers and containers on them; finds their Neutron
    objects; removes everything in the right order (containers, Docker networks, then anything
    Neutron still holds). ``neutron`` is an openstacksdk Connection that can see kuryr's objects
    (kuryr creates them in its service project, so usually the admin cloud)."""

    def __init__(
        self,
        docker_client: Any,
        neutron: Any,
        labels: dict[str, str],
        name_prefix: str,
        run_id: str,
        image: str,
        network_driver: str = "kuryr",
        ipam_driver: str = "kuryr",
        timeouts: Timeouts | None = None,
        neutron_creating: Any | None = None,
        witness: Witness | None = None,
    ) -> None:
        from pytest_workshop.components.docker import bounded

        self.docker, self.neutron = docker_client, neutron
        # Creating a Neutron network or subnet (ML2/OVN: its metadata port and namespace too)
        # took up to 5.1 s on a busy machine: a connection bounded by [timeouts] network_create.
        self.neutron_creating = neutron_creating or neutron
        self.labels, self.name_prefix, self.run_id, self.image = labels, name_prefix, run_id, image
        self.network_driver, self.ipam_driver = network_driver, ipam_driver
        self.timeouts = timeouts or Timeouts()
        self.witness = witness  # what the lab's control and kuryr's log say, for a failure's hint
        # Creating a network or starting a container waits on a chain (Docker -> kuryr -> Neutron
        # -> OVN): each has its own bound, and so its own client (see docker.bounded).
        self._creating = bounded(docker_client, self.timeouts.network_create)
        self._starting = bounded(docker_client, self.timeouts.container_start)
        self._counter = itertools.count()
        self._containers: list[Any] = []
        self._networks: list[KuryrNetwork] = []
        self._neutron_objects: list[tuple[str, Any]] = []  # (kind, object) created here directly
        self._pending_networks: list[str] = []
        # Checks create networks from several threads at once (experiments in the background):
        # a CIDR handed out here is never handed out again, even before Neutron lists it.
        self._cidr_lock = threading.Lock()
        self._handed_out: set[ipaddress.IPv4Network] = set()

    def name(self, what: str) -> str:
        return f"{self.name_prefix}{what}-{os.urandom(3).hex()}"

    @property
    def run_tag(self) -> str:
        return f"{RUN_TAG}{self.run_id}"

    # --- addresses ------------------------------------------------------------------------
    def free_cidr(self) -> str:
        """A /24 that no Neutron subnet or pool uses, picked from a run- and process-specific
        start so parallel runs and xdist workers rarely even try the same one."""
        used = [ipaddress.IPv4Network(s.cidr) for s in self.neutron.network.subnets() if s.ip_version == 4]
        for pool in self.neutron.network.subnet_pools():
            used += [ipaddress.IPv4Network(p) for p in pool.prefixes or [] if ":" not in p]
        subnets = list(CIDR_SPACE.subnets(new_prefix=24))
        seed = f"{self.run_id}-{os.getpid()}-{next(self._counter)}"
        start = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % len(subnets)
        with self._cidr_lock:
            for candidate in subnets[start:] + subnets[:start]:
                if candidate not in self._handed_out and not any(candidate.overlaps(u) for u in used):
                    self._handed_out.add(candidate)
                    return str(candidate)
        raise WorkshopError(f"no free /24 left in {CIDR_SPACE} on this cloud", hint="run `workshop janitor`")

    # --- Docker side ----------------------------------------------------------------------
    def create(self, cidr: str | None = None, neutron_net_id: str | None = None) -> KuryrNetwork:
        """`docker network create -d kuryr --ipam-driver kuryr --subnet CIDR [-o neutron.net.uuid=ID]`."""
        import docker.errors
        import docker.types
        import requests

        cidr = cidr or self.free_cidr()
        net = ipaddress.ip_network(cidr)
        pool = docker.types.IPAMPool(subnet=cidr, gateway=str(net.network_address + 1))
        options = {"neutron.net.uuid": neutron_net_id} if neutron_net_id else {}
        ipam = docker.types.IPAMConfig(driver=self.ipam_driver, pool_configs=[pool], options=options)
        name = self.name("knet")
        try:
            created = self._creating.networks.create(
                name, driver=self.network_driver, ipam=ipam, options=options, labels=self.labels
            )
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            # A timed-out create may still complete later: clean-up removes it by name then (the
            # janitor, if later still).
            self._pending_networks.append(name)
            raise self._diagnose(f"`docker network create -d {self.network_driver}`", e, "network_create") from None
        knet = KuryrNetwork(created, cidr, None, None, None, existing=neutron_net_id is not None)
        self._networks.append(knet)
        self.refresh(knet)
        return knet

    def _remove_pending_network(self, name: str) -> None:
        """A create that timed out: removed if it completed since; if not (yet), dockerd may still
        complete it, so the sweeps of the runs that follow must look for it."""
        from pytest_workshop.run import expect_late_objects

        try:
            found = self.docker.networks.list(names=[name])
        except Exception:
            expect_late_objects(self.run_id)
            raise
        for net in found:
            net.remove()
        if not found:
            expect_late_objects(self.run_id)

    def _diagnose(self, what: str, exc: BaseException, bound: str) -> WorkshopError:
        """Docker's error says little when kuryr is down (it retries, then times out): ask kuryr.
        ``bound`` names the [timeouts] entry the operation had."""
        text = quote(str(exc), 200)
        refused = neutron_refusal(str(exc))
        if refused is not None:  # kuryr answered, with Neutron's reason: no probe needed
            return CheckFailed(f"{what} failed: {refused[0]}: {text}", hint=refused[1])
        try:
            found = probe(self.docker, self.image, self.labels, self.name("kprobe"))
        except ComponentUnavailable as e:  # the probe stalled too: it says whose failure that is
            said = e.message.removeprefix(f"{e.component}: ")
            return ComponentUnavailable(e.component, f"{what} failed: {text}; {said}", hint=e.hint)
        except Exception as e:
            return WorkshopError(f"{what} failed: {text}", hint=f"could not probe kuryr either ({str(e)[:80]})")
        problem = found.problem()
        if problem:
            return kuryr_failure(problem, self.witness)
        if "timed out" in text.lower():
            seconds = getattr(self.timeouts, bound)
            return ComponentUnavailable(
                "kuryr",
                f"{what} did not finish within {seconds:g} s ([timeouts] {bound}), although kuryr answers: "
                "the lab may be overloaded rather than broken",
                hint=HINT_SLOW.format(bound=bound),
            )
        return kuryr_refused(what, text, self.witness)

    def refresh(self, knet: KuryrNetwork) -> KuryrNetwork:
        """Find the Neutron network, subnet and pool behind a kuryr Docker network (by kuryr's tags)."""
        nets = list(self.neutron.network.networks(tags=",".join(id_tags(knet.id))))
        knet.neutron_network = nets[0] if len(nets) == 1 else None
        if knet.neutron_network is not None:
            subnets = [
                s for s in self.neutron.network.subnets(network_id=knet.neutron_network.id) if s.cidr == knet.cidr
            ]
            knet.subnet = subnets[0] if subnets else None
            pool_id = knet.subnet.subnet_pool_id if knet.subnet else None
            knet.subnetpool = self.neutron.network.get_subnet_pool(pool_id) if pool_id else None
        return knet

    def neutron_networks(self, knet: KuryrNetwork) -> list[Any]:
        return list(self.neutron.network.networks(tags=",".join(id_tags(knet.id))))

    def run(
        self,
        knet: KuryrNetwork,
        command: list[str] | None = None,
        image: str | None = None,
        also: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> Any:
        """A container on the kuryr network (and on the networks ``also`` names, joined before it
        starts: the lexically first network gives the default route, e.g. "bridge" for the lab's
        own addresses while the kuryr network carries the service traffic)."""
        import docker.errors
        import requests

        kwargs.setdefault("name", self.name("kc"))
        try:
            container = self._starting.containers.create(
                image or self.image,
                command or ["sleep", "3600"],
                network=knet.docker.name,
                labels=self.labels,
                init=True,
                stop_signal="SIGKILL",
                **kwargs,
            )
            self._containers.append(container)
            for name in also:
                self._starting.networks.get(name).connect(container)
            container.start()
        except (docker.errors.APIError, requests.exceptions.RequestException) as e:
            raise self._diagnose(
                f"starting a container on kuryr network {knet.docker.name}", e, "container_start"
            ) from None
        # Through the request-bound client from here on: reading it is one plain call. (Removal
        # at clean-up goes through the container_start-bound one: it waits on kuryr too.)
        return self.docker.containers.get(container.id)

    @staticmethod
    def endpoint(container: Any, knet: KuryrNetwork) -> dict[str, Any]:
        container.reload()
        ep: dict[str, Any] = container.attrs["NetworkSettings"]["Networks"][knet.docker.name]
        return ep

    def port_of(self, container: Any, knet: KuryrNetwork) -> Any | None:
        """The Neutron port behind a container's endpoint on a kuryr network (kuryr tags it with the endpoint id)."""
        ep = self.endpoint(container, knet)
        ports = list(self.neutron.network.ports(tags=",".join(id_tags(ep["EndpointID"]))))
        return ports[0] if ports else None

    def wait_port_status(self, port_id: str, status: str, timeout: float) -> Any:
        """The port once it has ``status``, or as it is when ``timeout`` runs out."""
        port: Any = None

        def reached() -> bool:
            nonlocal port
            port = self.neutron.network.get_port(port_id)
            return bool(port.status == status)

        wait_until(reached, timeout, step=0.5)  # a Neutron call each: Neutron is the busiest process
        return port

    @staticmethod
    def ping(src: Any, address: str, count: int = 1, wait: int = 1) -> bool:
        result = src.exec_run(["ping", "-c", str(count), "-W", str(wait), address])
        return bool(result.exit_code == 0)

    def disconnect(self, container: Any, knet: KuryrNetwork) -> None:
        knet.docker.disconnect(container, force=True)

    # --- Neutron side (objects a check makes itself) -----------------------------------------
    def neutron_network(self, cidr: str) -> tuple[Any, Any]:
        """A plain Neutron network + subnet, tagged with the run (for `-o neutron.net.uuid`)."""
        n = self.neutron_creating.network
        try:
            net = n.create_network(name=self.name("neutron-net"))
            self._neutron_objects.append(("network", net))
            n.set_tags(net, [self.run_tag])
            sub = n.create_subnet(network_id=net.id, cidr=cidr, ip_version=4, name=self.name("neutron-subnet"))
        except Exception as e:
            if "timed out" not in str(e).lower() and "Timeout" not in type(e).__name__:
                raise  # Neutron's own answer: the verdict policy names it
            seconds = self.timeouts.network_create
            raise ComponentUnavailable(
                "openstack",
                f"Neutron did not create a network and subnet within {seconds:g} s ([timeouts] network_create): "
                "the lab may be overloaded rather than broken",
                hint="if `openstack network list` answers at once, the machine was only busy: run fewer checks at "
                "once (-n) or raise [timeouts] network_create; otherwise read Neutron's log",
            ) from None
        return net, sub

    def security_group(self, project_id: str) -> Any:
        n = self.neutron.network
        sg = n.create_security_group(name=self.name("sg"), project_id=project_id, description="pytest-workshop")
        self._neutron_objects.append(("security_group", sg))
        n.set_tags(sg, [self.run_tag])
        return sg

    def leftovers(self, knet: KuryrNetwork) -> list[str]:
        """Neutron objects of a removed kuryr network that are still there."""
        n, found = self.neutron.network, []
        found += [f"network {x.name} ({x.id})" for x in self.neutron_networks(knet)]
        if knet.neutron_network is not None:
            found += [f"port {p.id} ({p.device_owner})" for p in n.ports(network_id=knet.neutron_network.id)]
            if not knet.existing:
                found += [f"subnet {s.name}" for s in n.subnets(network_id=knet.neutron_network.id)]
        if knet.subnetpool is not None:
            found += [f"subnet pool {p.name}" for p in n.subnet_pools() if p.id == knet.subnetpool.id]
        return found

    # --- clean-up ---------------------------------------------------------------------------
    def cleanup(self) -> list[str]:
        """Containers, then Docker networks (kuryr removes its Neutron objects), then Neutron objects
        made here or left behind. Returns what could not be removed."""
        problems: list[str] = []

        def attempt(what: str, fn: Any) -> None:
            try:
                fn()
            except Exception as e:
                if "404" not in str(e) and "No such" not in str(e) and "NotFound" not in type(e).__name__:
                    problems.append(f"{what}: {str(e)[:160]}")

        # at once: each removal waits on kuryr and Neutron to delete the port (about 1 s)
        with concurrent.futures.ThreadPoolExecutor(max(1, min(8, len(self._containers)))) as pool:
            for c in reversed(self._containers):
                pool.submit(attempt, f"container {c.name}", lambda c=c: c.remove(force=True, v=True))
        # at once too: kuryr deletes each network's subnet, pool and network in Neutron
        with concurrent.futures.ThreadPoolExecutor(max(1, min(8, len(self._networks)))) as pool:
            for knet in reversed(self._networks):
                pool.submit(attempt, f"docker network {knet.docker.name}", knet.docker.remove)
        for name in self._pending_networks:
            attempt(f"docker network {name}", lambda name=name: self._remove_pending_network(name))
        n = self.neutron.network
        for knet in reversed(self._networks):
            for net in self.neutron_networks(knet) if not knet.existing else []:
                for port in n.ports(network_id=net.id):
                    attempt(f"port {port.id}", lambda p=port: n.delete_port(p))
                attempt(f"network {net.name}", lambda x=net: n.delete_network(x))
        for kind, obj in reversed(self._neutron_objects):
            if kind == "network":
                for port in n.ports(network_id=obj.id):
                    attempt(f"port {port.id}", lambda p=port: n.delete_port(p))
                attempt(f"network {obj.name}", lambda o=obj: n.delete_network(o))
            else:
                attempt(f"security group {obj.name}", lambda o=obj: n.delete_security_group(o))
        self._containers.clear()
        self._networks.clear()
        self._neutron_objects.clear()
        self._pending_networks.clear()
        return problems
