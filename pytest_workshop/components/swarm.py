"""Docker Swarm: the cluster as managers see it (nodes, roles, leader, quorum), and what the
engine's Swarm errors mean. Services a check creates: swarm_services.py."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pytest_workshop.errors import CheckFailed, ComponentUnavailable, WorkshopError

HINT_NO_LEADER = (
    "the swarm has lost quorum: start the managers that are down (more than half must run), "
    "or on a survivor run `docker swarm init --force-new-cluster`"
)


@dataclass(frozen=True)
class NodeInfo:
    id: str
    hostname: str
    role: str
    availability: str
    state: str
    addr: str
    leader: bool
    reachability: str  # managers only: reachable / unreachable / unknown

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"


@dataclass
class SwarmView:
    """Nodes as one manager sees them, with the raft quorum arithmetic."""

    seen_from: str
    nodes: list[NodeInfo]

    @property
    def managers(self) -> list[NodeInfo]:
        return [n for n in self.nodes if n.is_manager]

    @property
    def leader(self) -> NodeInfo | None:
        leaders = [n for n in self.nodes if n.leader]
        return leaders[0] if len(leaders) == 1 else None

    @property
    def fault_tolerance(self) -> int:
        """How many managers can be lost while keeping quorum."""
        return (len(self.managers) - 1) // 2

    def by_id(self) -> dict[str, NodeInfo]:
        return {n.id: n for n in self.nodes}

    def as_dict(self) -> dict[str, Any]:
        return {
            "seen_from": self.seen_from,
            "nodes": [n.__dict__ for n in self.nodes],
            "fault_tolerance": self.fault_tolerance,
        }


HINT_NOT_IN_SWARM = (
    "this engine is not in a swarm: `docker swarm init` on the first manager, then "
    "`docker swarm join --token TOKEN MANAGER:2377` on the others (`docker swarm join-token manager` prints it)"
)
HINT_WORKER = (
    "this engine is a worker: point [docker] host at a manager, or `docker node promote` this node on a manager"
)


def swarm_error(text: str) -> tuple[str, str] | None:
    """(what, hint) when an engine's error is about the swarm itself, else None."""
    if "does not have a leader" in text or "lost leader" in text or "context deadline exceeded" in text:
        return "the swarm does not have a leader", HINT_NO_LEADER
    if "not a swarm manager" in text or "not part of a swarm" in text:
        if "Worker nodes" in text:
            return "this engine is a swarm worker, not a manager", HINT_WORKER
        return "this engine is not in a swarm", HINT_NOT_IN_SWARM
    return None


def from_the_engine(exc: BaseException) -> bool:
    """An error the engine, or the way to it, raised (docker-py, requests, sockets): the lab's. Any
    other exception is the suite's own and keeps its traceback (a KeyError from a library's
    environment lookup is no failure of the engine, whatever the call was)."""
    import docker.errors
    import requests
    import urllib3

    lab = docker.errors.DockerException | requests.exceptions.RequestException | urllib3.exceptions.HTTPError | OSError
    return isinstance(exc, lab)


def explain(exc: BaseException, where: str) -> WorkshopError:
    text = str(getattr(exc, "explanation", None) or exc)
    first = " ".join(text.split())[:160]
    found = swarm_error(text)
    if found is not None:
        what, hint = found
        if hint is HINT_NO_LEADER:
            return ComponentUnavailable("swarm", f"{where}: {what} ({first})", hint)
        return CheckFailed(f"{where}: {what} ({first})", hint=hint)
    if "timed out" in text.lower():
        return ComponentUnavailable("swarm", f"{where}: no answer in time ({first[:120]})", HINT_NO_LEADER)
    return CheckFailed(f"{where}: {first}", hint="read the engine's log on that node")


def set_availability(client: Any, hostname: str, availability: str, attempts: int = 5) -> None:
    """``docker node update --availability`` for the node called ``hostname``. A node's version moves
    whenever its agent reports (status, description), so an update from a version read a moment
    earlier can be refused "update out of sequence": read it again and retry, as the CLI's users do."""
    for attempt in range(attempts):
        try:
            target = next((n for n in client.nodes.list() if n.attrs["Description"]["Hostname"] == hostname), None)
            if target is None:
                raise CheckFailed(f"the swarm has no node {hostname}", hint="compare `docker node ls`")
            target.update({**target.attrs["Spec"], "Availability": availability})
            return
        except WorkshopError:
            raise
        except Exception as e:
            if not from_the_engine(e):
                raise
            if "out of sequence" in str(e) and attempt + 1 < attempts:
                time.sleep(0.2)
                continue
            raise explain(e, f"setting node {hostname} to {availability}") from e


def view(client: Any, seen_from: str = "manager") -> SwarmView:
    try:
        listed = client.nodes.list()
    except Exception as e:
        if not from_the_engine(e):
            raise
        raise explain(e, f"listing nodes via {seen_from}") from e
    nodes = []
    for n in listed:
        a = n.attrs
        manager = a.get("ManagerStatus") or {}
        nodes.append(
            NodeInfo(
                id=a["ID"],
                hostname=a["Description"]["Hostname"],
                role=a["Spec"]["Role"],
                availability=a["Spec"]["Availability"],
                state=a["Status"]["State"],
                addr=a["Status"].get("Addr", ""),
                leader=bool(manager.get("Leader")),
                reachability=manager.get("Reachability", ""),
            )
        )
    return SwarmView(seen_from=seen_from, nodes=sorted(nodes, key=lambda n: n.hostname))
