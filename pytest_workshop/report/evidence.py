"""Evidence for a failed check: what an instructor would look at, small and relevant.

Built from the objects the check already had (its fixtures' clients and factories), so no new
connection is opened; every call is bounded by those clients' timeouts, and a collector that
fails is skipped rather than hiding the check's own failure. When the failure already says the
component is unreachable, only local evidence (log tails) is gathered: asking again would only
wait for the same timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_TEXT = 8000  # characters per attachment
LOG_LINES = 30


@dataclass(frozen=True)
class Evidence:
    name: str
    text: str
    kind: str = "json"  # "json" or "text"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)[:MAX_TEXT]


def docker_info(client: Any) -> Evidence:
    info = client.info()
    keep = ("Name", "ServerVersion", "Driver", "CgroupDriver", "Containers", "ContainersRunning", "Warnings")
    swarm = info.get("Swarm") or {}
    data = {k: info.get(k) for k in keep}
    data["Swarm"] = {k: swarm.get(k) for k in ("LocalNodeState", "NodeID", "ControlAvailable", "Error") if k in swarm}
    data["NetworkPlugins"] = (info.get("Plugins") or {}).get("Network")
    return Evidence("docker info", _json(data))


def swarm_tasks(factory: Any) -> Evidence:
    tasks = {s.name: [t.describe() for t in s.tasks()] for s in list(getattr(factory, "_services", []))}
    return Evidence("service tasks (node:state (error))", _json(tasks))


def etcd_status(client: Any) -> Evidence:
    return Evidence("etcd endpoint status", _json([s.as_dict() for s in client.statuses()]))


def kuryr_ports(factory: Any) -> Evidence:
    out = {}
    for knet in list(getattr(factory, "_networks", [])):
        if knet.neutron_network is None:
            continue
        ports = factory.neutron.network.ports(network_id=knet.neutron_network.id)
        out[knet.docker.name] = [
            {
                k: getattr(p, k, None)
                for k in (
                    "id",
                    "status",
                    "device_owner",
                    "mac_address",
                    "fixed_ips",
                    "binding_host_id",
                    "binding_vif_type",
                    "security_group_ids",
                )
            }
            for p in ports
        ]
    return Evidence("Neutron ports of the check's kuryr networks", _json(out))


def openstack_agents(view: Any) -> Evidence:
    return Evidence("Neutron agents", _json([a.__dict__ for a in view.agents]))


# fixture name -> how to turn it into evidence (reads only; never changes the lab)
COLLECTORS: dict[str, Callable[[Any], Evidence]] = {
    "docker_client": docker_info,
    "kuryr_docker": docker_info,
    "swarm_services": swarm_tasks,
    "swarm_services_module": swarm_tasks,
    "etcd": etcd_status,
    "kuryr_networks": kuryr_ports,
    "kuryr_networks_module": kuryr_ports,
    "devstack": openstack_agents,
}


def log_tail(path: Path, lines: int = LOG_LINES) -> Evidence | None:
    from pytest_workshop.components.service_log import tail

    text = tail(path)
    if text is None:
        return None
    return Evidence(f"last {lines} lines of {path}", "\n".join(text.splitlines()[-lines:])[-MAX_TEXT:], "text")


def collect(funcargs: dict[str, Any], logs: tuple[Path, ...], unreachable: bool) -> list[Evidence]:
    found: list[Evidence] = []
    if not unreachable:
        done: set[int] = set()
        for name, collector in COLLECTORS.items():
            obj = funcargs.get(name)
            if obj is None or id(obj) in done:
                continue
            done.add(id(obj))
            try:
                found.append(collector(obj))
            except Exception as e:  # evidence is best effort; the check's own failure stands
                found.append(Evidence(f"{name}: evidence unavailable", f"{type(e).__name__}: {str(e)[:300]}", "text"))
    for path in logs:
        tail = log_tail(path)
        if tail is not None:
            found.append(tail)
    return found
