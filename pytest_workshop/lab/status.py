"""`workshop lab status`: what every machine, engine, etcd member and OpenStack service of the
embedded lab is doing now. The Swarm's view comes from components.swarm, the engines' and the
members' health from components.http, as the checks see them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_workshop.lab import etcd_cluster, nodes, process
from pytest_workshop.lab import openstack as openstack_lab
from pytest_workshop.lab.process import ProcessRecord

if TYPE_CHECKING:
    from pytest_workshop.lab.machines import LabMachines
    from pytest_workshop.lab.state import LabState

UNKNOWN_ROLE = {"role": "?", "state": "unknown", "availability": "?", "leader": False}


def alive(rec: ProcessRecord | None) -> bool:
    return bool(rec and process.is_ours(rec))


def docker_health(spec: nodes.NodeSpec, path: str = "/info") -> str:
    """ "healthy" if the engine answers ``path`` with 200. Status asks /info, not /_ping: a restarted
    Swarm manager answers pings at once but blocks /info (the first call every check makes) until
    it has caught up with the other managers. Starting an engine waits for /_ping only: without
    quorum /info may never answer."""
    from pytest_workshop.components import http

    answer = http.request(f"http://localhost{path}", 2.0, unix_socket=spec.socket)
    return "healthy" if answer.status == 200 else f"unhealthy ({answer.detail})"


def node_rss(init: ProcessRecord | None) -> float:
    """MiB of memory of everything running on a lab machine."""
    if not alive(init) or init is None:
        return 0.0
    total = sum(process.rss_kib(ProcessRecord("", pid, ("",), 0, "")) for pid in nodes.node_pids(init))
    return round(total / 1024, 1)


def swarm_roles(specs: list[nodes.NodeSpec]) -> dict[str, dict[str, Any]]:
    """Roles and states as the first manager that answers sees them (a down manager cannot say)."""
    from pytest_workshop.components import docker, swarm
    from pytest_workshop.config import DockerConfig, Timeouts
    from pytest_workshop.errors import WorkshopError

    for spec in specs:
        try:
            client = docker.connect(DockerConfig(host=spec.host), Timeouts(connect=2, request=3))
        except WorkshopError:
            continue
        try:
            view = swarm.view(client, seen_from=spec.name)
        except WorkshopError:
            continue
        finally:
            client.close()
        return {
            n.hostname: {"role": n.role, "availability": n.availability, "state": n.state, "leader": n.leader}
            for n in view.nodes
        }
    return {}


def _machine_state(spec: nodes.NodeSpec, init: ProcessRecord | None) -> str:
    if not alive(init):
        return "crashed"
    if nodes.is_frozen(spec):
        return "frozen"
    return "partitioned" if nodes.is_partitioned(spec) else "running"


def _process_state(rec: ProcessRecord | None, healthy: Any) -> str:
    """stopped / paused, else what ``healthy()`` says of a running process."""
    if not alive(rec):
        return "stopped"
    if rec and process.is_paused(rec):
        return "paused"
    return str(healthy())


def lab_status(lab: LabMachines) -> dict[str, Any]:
    data = lab.load()
    if data is None:
        return {"state": "down"}
    out: dict[str, Any] = {
        "state": "up" if lab.is_up() else "degraded",
        "name": data.name,
        "dir": str(lab.state_dir),
    }
    roles = swarm_roles(lab.node_specs(data))
    out["nodes"] = []
    for spec in lab.node_specs(data):
        init, dockerd = lab.record("init", spec.name, data), lab.record("dockerd", spec.name, data)
        out["nodes"].append(
            {
                "name": spec.name,
                "address": spec.address,
                "machine": _machine_state(spec, init),
                "docker": _process_state(dockerd, lambda spec=spec: docker_health(spec)),
                "rss_mib": node_rss(init),
                **roles.get(spec.name, UNKNOWN_ROLE),
            }
        )
    # the host reaches etcd (and a TLS or SSH engine) only through the forwarder: when it is not
    # running, "unhealthy" members would point at etcd for what is the lab's own plumbing
    forwarder = _process_state(data.forwarder, lambda: "running")
    out["forwarder"], out["forwarder_pid"] = forwarder, data.forwarder.pid if data.forwarder else None
    members = []
    for m in lab.etcd_specs(data):
        rec = lab.record("etcd", m.name, data)

        def health(m: etcd_cluster.MemberSpec = m) -> str:
            if etcd_cluster.is_partitioned(lab.node_spec(m.node).netns):
                return "partitioned"
            if etcd_cluster.member_healthy(m):
                return "healthy"
            return "unhealthy" if forwarder == "running" else f"unreachable (forwarder {forwarder})"

        members.append(
            {
                "name": m.name,
                "node": m.node,
                "endpoint": m.forwarded_url,
                "health": _process_state(rec, health),
                "pid": rec.pid if rec else None,
            }
        )
    out["etcd"] = members
    if data.openstack:
        out["openstack"] = openstack_status(lab, data)
    out["configs"] = data.configs
    return out


def openstack_status(lab: LabMachines, data: LabState) -> dict[str, Any]:
    machine, spec = lab.openstack_specs(data)
    init = lab.record("openstack", "init", data)
    services = []
    for name in ("dockerd", *openstack_lab.SERVICES):
        rec = lab.record("openstack", name, data)
        if name == "dockerd":
            state = _process_state(rec, lambda: docker_health(machine))
        else:
            state = _process_state(rec, lambda name=name: openstack_lab.service_health(spec, machine, name))
        services.append({"name": name, "state": state, "pid": rec.pid if rec else None})
    return {
        "machine": machine.name,
        "running": alive(init),
        "docker": machine.host,
        "keystone": spec.keystone_url,
        "neutron": spec.neutron_url,
        "clouds_yaml": str(spec.clouds_yaml),
        "services": services,
        "rss_mib": node_rss(init),
    }
