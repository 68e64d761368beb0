"""Docker Swarm: the cluster as managers see it (nodes, roles, leader, quorum) and the state of
its tasks. Services a check creates: swarm_services.py; what the engine's Swarm errors mean:
explain.py."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pytest_workshop.components.explain import Talk, explain
from pytest_workshop.errors import CheckFailed, WorkshopError


def seconds_since(timestamp: str) -> float | None:
    """Seconds since an engine timestamp ("2026-11-30T10:34:24.572910326Z"); None if unreadable."""
    import datetime

    try:
        then = datetime.datetime.fromisoformat(timestamp[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return None
    return max(0.0, (datetime.datetime.now(datetime.UTC) - then).total_seconds())


@dataclass(frozen=True)
class TaskInfo:
    id: str
    node: str  # hostname
    state: str
    desired: str
    error: str
    container_id: str
    spec_version: int
    addresses: tuple[str, ...]
    message: str = ""  # the engine's Status.Message ("preparing", "pulling image", ...)
    seconds_in_state: float | None = None  # since Status.Timestamp, by this machine's clock

    def describe(self) -> str:
        err = f" ({self.error})" if self.error else ""
        stuck = ""
        if self.state not in ("running", "shutdown", "complete") and self.seconds_in_state is not None:
            said = f"{self.message!r} " if self.message and self.message != self.state else ""
            stuck = f" ({said}for {self.seconds_in_state:.0f} s)"
        return f"{self.node or '?'}:{self.state}{err}{stuck}"


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
    def schedulable(self) -> list[NodeInfo]:
        """The nodes Swarm may place new tasks on: ready and active."""
        return [n for n in self.nodes if n.state == "ready" and n.availability == "active"]

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


def from_the_engine(exc: BaseException) -> bool:
    """An error the engine, or the way to it, raised (docker-py, requests, sockets): the lab's. Any
    other exception is the suite's own and keeps its traceback (a KeyError from a library's
    environment lookup is no failure of the engine, whatever the call was)."""
    import docker.errors
    import requests
    import urllib3

    lab = docker.errors.DockerException | requests.exceptions.RequestException | urllib3.exceptions.HTTPError | OSError
    return isinstance(exc, lab)


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
            raise explain(e, Talk.swarm(f"setting node {hostname} to {availability}")) from e


def view(client: Any, seen_from: str = "manager") -> SwarmView:
    try:
        listed = client.nodes.list()
    except Exception as e:
        if not from_the_engine(e):
            raise
        raise explain(e, Talk.swarm(f"listing nodes via {seen_from}")) from e
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
