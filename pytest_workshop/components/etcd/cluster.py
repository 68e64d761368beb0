"""The cluster half of the etcd client: members, per-endpoint status and health, alarms, the
NOSPACE recovery, and the checks that name each member's problem (expect_healthy,
expect_replicated). A mixin of EtcdClient: it uses the client's bounded ``call``."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pytest_workshop.components.etcd.errors import (
    HINT_HUNG,
    HINT_REMOVED,
    EtcdError,
    describe,
)
from pytest_workshop.components.etcd.view import ALARM_NAMES, ClusterView, EndpointStatus, Member
from pytest_workshop.components.etcd.wire import LoopThread, connected
from pytest_workshop.components.waiting import wait_until
from pytest_workshop.config.model import EtcdConfig, Timeouts, strip_userinfo
from pytest_workshop.errors import CheckFailed, WorkshopError

T = TypeVar("T")
# Compaction and defragmentation rewrite a member's database: allow them several request bounds.
DEFRAG_FACTOR = 6


class ClusterChecks:
    """Needs from the client: its configuration, its endpoints, ``call`` and the loop."""

    cfg: EtcdConfig
    timeouts: Timeouts
    endpoints: list[str]
    _loop: LoopThread

    def call(
        self, what: str, op: Callable[[Any], Awaitable[T]], endpoint: str | None = None, timeout: float | None = None
    ) -> T:
        raise NotImplementedError

    def _client(self, endpoint: str) -> Any:
        raise NotImplementedError

    def delete_prefix(self, prefix: bytes) -> int:
        raise NotImplementedError

    def members(self) -> list[Member]:
        async def op(c: Any) -> Any:
            import aetcd.rpc as rpc

            return await c.clusterstub.MemberList(
                rpc.MemberListRequest(), timeout=self.timeouts.request, metadata=c.metadata
            )

        resp = self.call("member list", connected(op))
        return [
            Member(m.ID, m.name, tuple(m.peerURLs), tuple(m.clientURLs), bool(getattr(m, "isLearner", False)))
            for m in resp.members
        ]

    def has_revision(self, endpoint: str, key: bytes, revision: int) -> bool:
        """Whether ``endpoint`` itself (a serializable, local read) has ``key`` at ``revision`` or later."""

        async def op(c: Any) -> Any:
            return await c.get(key, serializable=True)

        try:
            kv = self.call("local read", op, endpoint=endpoint)
        except WorkshopError:
            return False
        return kv is not None and int(kv.mod_revision) >= revision

    def expect_replicated(self, key: bytes, revision: int, within: float) -> None:
        """Wait until every endpoint's own member has ``key`` at ``revision``; else fail saying, per
        member, whether it did not answer, was removed from the cluster, or is behind."""
        missing = list(self.endpoints)

        def everywhere() -> bool:
            nonlocal missing
            missing = [ep for ep in missing if not self.has_revision(ep, key, revision)]
            return not missing

        if wait_until(everywhere, within, step=0.05):
            return
        statuses = {s.endpoint: s for s in self.statuses()}
        members = self.members()
        member_ids = {m.id for m in members}
        listed_urls = {u.rstrip("/") for m in members for u in m.client_urls}
        # Fewer members than endpoints, and this endpoint not among them: a removed member (its
        # process stops itself). Endpoints that are forwarded match no client URL: count instead.
        fewer = len(members) < len(self.endpoints)
        reasons, kinds = [], set()
        for ep in missing:
            status = statuses.get(strip_userinfo(ep))
            if (status is None or not status.ok) and fewer and ep.rstrip("/") not in listed_urls:
                kind = "removed"
                text = (
                    f"did not answer, and the cluster lists {len(members)} members for "
                    f"{len(self.endpoints)} endpoints: it was removed from the cluster"
                )
            elif status is None or not status.ok:
                kind, text = "unreachable", f"did not answer ({status.error if status else 'no status'})"
            elif status.member_id not in member_ids:
                kind, text = "removed", "answers, but is not a member of the cluster any more (removed)"
            else:
                kind, text = "behind", f"a member, but at raft index {status.raft_index}, without revision {revision}"
            kinds.add(kind)
            reasons.append(f"{strip_userinfo(ep)}: {text}")
        if "removed" in kinds:
            hint = HINT_REMOVED
        elif kinds == {"unreachable"}:
            hint = "start or reconnect the members that did not answer; the others have the write"
        else:
            hint = "a member that stays behind is cut off from the leader or out of disk: read its log"
        raise CheckFailed(
            f"revision {revision} did not reach every member within {within:g} s: " + "; ".join(reasons), hint=hint
        )

    def statuses(self, timeout: float | None = None) -> list[EndpointStatus]:
        """Status of every endpoint, asked concurrently: one slow or paused member costs one timeout, not N."""
        bound = timeout or self.timeouts.request

        async def one(ep: str) -> EndpointStatus:
            import aetcd.rpc as rpc

            c = self._client(ep)
            try:
                await c.connect()
                r = await asyncio.wait_for(
                    c.maintenancestub.Status(rpc.StatusRequest(), timeout=bound, metadata=c.metadata),
                    bound,
                )
            except Exception as e:
                return EndpointStatus(endpoint=strip_userinfo(ep), ok=False, error=describe(e, bound))
            return EndpointStatus(
                strip_userinfo(ep), True, "", r.header.member_id, r.leader, r.version, r.dbSize, r.raftTerm, r.raftIndex
            )

        async def all_of() -> list[EndpointStatus]:
            return list(await asyncio.gather(*(one(ep) for ep in self.endpoints)))

        return self._loop.run(all_of(), bound + 1)

    def alarms(self) -> list[tuple[int, str]]:
        async def op(c: Any) -> Any:
            return [a async for a in c.list_alarms()]

        return [
            (a.member_id, ALARM_NAMES.get(int(a.alarm_type), str(a.alarm_type))) for a in self.call("alarm list", op)
        ]

    # maintenance: what an operator does after a NOSPACE alarm ------------------------------
    def revision(self) -> int:
        """The cluster's current revision."""

        async def op(c: Any) -> int:
            import aetcd.rpc as rpc

            resp = await c.kvstub.Range(
                rpc.RangeRequest(key=b"\0", limit=1, count_only=True),
                timeout=self.timeouts.request,
                metadata=c.metadata,
            )
            return int(resp.header.revision)

        return self.call("revision", connected(op))

    def compact(self, revision: int) -> None:
        """Forget history before ``revision`` (physically: the space becomes free in every member's db)."""

        async def op(c: Any) -> None:
            await c.compact(revision, physical=True)

        try:
            self.call("compact", op, timeout=self.timeouts.request * DEFRAG_FACTOR)
        except EtcdError as e:
            if "has been compacted" not in e.message:  # already compacted that far: nothing to do
                raise

    def defragment(self, endpoint: str) -> None:
        """Give one member's free pages back to the file system (a member at a time: it blocks that member)."""

        async def op(c: Any) -> None:
            await c.defragment()

        self.call("defragment", op, endpoint=endpoint, timeout=self.timeouts.request * DEFRAG_FACTOR)

    def disarm_alarms(self) -> None:
        """Deactivate every NOSPACE alarm, one per member as `etcdctl alarm disarm` does: etcd ignores
        a deactivation for member 0. (aetcd can only disarm that alarm type; CORRUPT needs a restore.)"""
        for member_id, name in self.alarms():
            if name != "NOSPACE":
                continue

            async def op(c: Any, member_id: int = member_id) -> None:
                await c.disarm_alarm(member_id)

            self.call("alarm disarm", op)

    def recover_space(self, delete_prefix: bytes | None = None) -> None:
        """The documented NOSPACE recovery: (delete what filled it,) compact, defragment every member, disarm."""
        if delete_prefix:
            self.delete_prefix(delete_prefix)
        self.compact(self.revision())
        for endpoint in self.endpoints:
            self.defragment(endpoint)
        self.disarm_alarms()

    def health(self, endpoint: str) -> tuple[bool, str]:
        """etcd's own /health verdict for one endpoint (it checks leader and alarms)."""
        from pytest_workshop.components import http

        url = strip_userinfo(endpoint.rstrip("/") + "/health")
        ctx = None
        if url.startswith("https://"):
            ctx = ssl.create_default_context(cafile=str(self.cfg.cacert) if self.cfg.cacert else None)
            if self.cfg.cert and self.cfg.key:
                ctx.load_cert_chain(str(self.cfg.cert), str(self.cfg.key))
        answer = http.request(url, self.timeouts.request, ssl_context=ctx)
        if answer.status is None:
            return False, answer.error
        body = answer.json()  # a 503 carries the verdict too
        if not isinstance(body, dict):
            return False, answer.detail
        ok = str(body.get("health")) == "true"
        if ok:
            return True, "healthy"
        # etcd 3.4 gives no reason; it says false when the member has no leader or an alarm is raised.
        return False, f"says unhealthy ({body.get('reason') or 'no leader, or an alarm'})"

    def expect_healthy(self) -> None:
        """etcd's own /health verdict from every endpoint (asked concurrently); else fail with the
        hint for what the unhealthy ones did: refused (down), no answer (hung), or said unhealthy."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(self.endpoints)) as pool:
            verdicts = dict(zip(self.endpoints, pool.map(self.health, self.endpoints), strict=True))
        bad = {strip_userinfo(ep): why for ep, (ok, why) in verdicts.items() if not ok}
        if not bad:
            return
        hints = []
        if any("hung or paused" in why for why in bad.values()):
            hints.append(HINT_HUNG)
        if any("hung or paused" not in why and "says unhealthy" not in why for why in bad.values()):
            hints.append(
                "start the members that are down (systemctl start etcd on that machine) and reconnect any that are cut off"
            )
        if any("says unhealthy" in why for why in bad.values()):
            hints.append("a member that answers but says unhealthy has no leader or an alarm: see LAB3-04 and LAB3-06")
        raise CheckFailed(
            f"{len(bad)} of {len(verdicts)} endpoints unhealthy: "
            + "; ".join(f"{ep}: {why}" for ep, why in bad.items()),
            hint="; ".join(hints) + "; compare with `etcdctl endpoint health`",
        )

    def cluster_view(self) -> ClusterView:
        errors: list[str] = []
        members: list[Member] = []
        alarms: list[tuple[int, str]] = []
        statuses = self.statuses()
        try:
            members = self.members()
            alarms = self.alarms()
        except WorkshopError as e:
            errors.append(e.message)
        return ClusterView(members=members, statuses=statuses, alarms=alarms, errors=errors)
