"""Plain data the etcd client returns: keys, members, per-endpoint status, watch events, and
the cluster as one view (members, statuses, leader, alarms)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALARM_NAMES = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool = False


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: str
    ok: bool
    error: str = ""
    member_id: int = 0
    leader_id: int = 0
    version: str = ""
    db_size: int = 0
    raft_term: int = 0
    raft_index: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["member_id"], d["leader_id"] = f"{self.member_id:x}", f"{self.leader_id:x}"
        return d


@dataclass(frozen=True)
class WatchEvent:
    kind: str  # "PUT" or "DELETE"
    key: bytes
    value: bytes
    mod_revision: int


@dataclass
class ClusterView:
    """Members, per-endpoint status, leader and alarms, collected once for a check or a report."""

    members: list[Member]
    statuses: list[EndpointStatus]
    alarms: list[tuple[int, str]]
    errors: list[str] = field(default_factory=list)

    @property
    def leaders(self) -> set[int]:
        return {s.leader_id for s in self.statuses if s.ok and s.leader_id}

    @property
    def leader(self) -> Member | None:
        ids = self.leaders
        if len(ids) != 1:
            return None
        (lid,) = ids
        return next((m for m in self.members if m.id == lid), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "members": [{"id": f"{m.id:x}", "name": m.name, "client_urls": list(m.client_urls)} for m in self.members],
            "endpoints": [s.as_dict() for s in self.statuses],
            "alarms": [{"member_id": f"{mid:x}", "alarm": a} for mid, a in self.alarms],
            "errors": self.errors,
        }
