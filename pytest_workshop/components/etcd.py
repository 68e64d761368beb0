"""etcd: a synchronous, always-bounded client over aetcd, and a view of the cluster.

Why a wrapper: aetcd (the maintained fork of python-etcd3's API) is asyncio-only, talks to
one endpoint, has no TLS option and no default timeout. Research measured every client
hanging forever on a paused member without a deadline. So every call here
- runs on a private event loop thread and is bounded three times (gRPC deadline,
  asyncio.wait_for, and the caller's future timeout);
- tries the endpoints in turn when one is down or times out, remembering which answered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pytest_workshop.components.waiting import wait_until
from pytest_workshop.config.model import EtcdConfig, Timeouts, strip_userinfo
from pytest_workshop.errors import CheckFailed, ComponentUnavailable, WorkshopError

T = TypeVar("T")
log = logging.getLogger("pytest_workshop.etcd")

# gRPC's C core logs fork() notices to stderr whenever a lab process is spawned; only errors matter.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

HINT_UNREACHABLE = (
    "start etcd (systemctl start etcd) on the members that are down, and check that ETCDCTL_ENDPOINTS / "
    "[etcd] endpoints match where it listens"
)
HINT_NOSPACE = (
    "etcd is out of space (NOSPACE alarm): delete what filled it, compact, defragment every member "
    "(`etcdctl defrag --cluster`), then `etcdctl alarm disarm`"
)
NOSPACE_ERROR = "database space exceeded"  # etcd's words when a write hits the quota
ALARM_NAMES = {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}
# Compaction and defragmentation rewrite a member's database: allow them several request bounds.
DEFRAG_FACTOR = 6
# Fast reconnects: a member that comes back must be usable within a second, not after
# gRPC's default exponential backoff (which grows to two minutes).
CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.enable_retries": 0,
}


HINT_AUTH_REQUIRED = (
    "this etcd requires authentication: give a user as etcdctl takes it (ETCDCTL_USER=name:password), "
    "or [etcd] username / password in lab.toml"
)
HINT_AUTH_REJECTED = (
    "etcd rejected the user or password: check ETCDCTL_USER (or [etcd] username / password in lab.toml) "
    "against `etcdctl user list`"
)
HINT_REMOVED = (
    "a member removed from the cluster cannot just be restarted: add it again (`etcdctl member add NAME "
    "--peer-urls=...`), then start it with an empty data directory and --initial-cluster-state existing"
)
HINT_HUNG = (
    "a member that accepts connections but does not answer is hung or paused: look at its process "
    "(`ps -o stat,cmd -C etcd`: T means stopped; `kill -CONT PID` or restart it) and its disk"
)


class EtcdError(CheckFailed):
    """etcd answered, but with an error (for example NOSPACE, or a request it rejects)."""

    @property
    def is_nospace(self) -> bool:
        return NOSPACE_ERROR in self.message


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


# --- protobuf by hand for the v3lock service (aetcd ships no stubs for it) --------------------


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _field_int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _decode_fields(buf: bytes) -> dict[int, Any]:
    """Top-level fields of a protobuf message: varints as int, length-delimited as bytes."""
    out: dict[int, Any] = {}
    i = 0

    def read_varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while i < len(buf):
        tag = read_varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            out[number] = read_varint()
        elif wire == 2:
            length = read_varint()
            out[number] = buf[i : i + length]
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


# --- the event loop thread --------------------------------------------------------------------


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="workshop-etcd", daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T], timeout: float) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(coro, timeout)

        fut = asyncio.run_coroutine_threadsafe(bounded(), self.loop)
        try:
            return fut.result(timeout + 1.0)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"no answer within {timeout:g} s") from None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=2)


def refusal(what: str, where: str, described: str) -> EtcdError:
    """etcd answered a request with an error: the failure its words mean, with the hint for it."""
    if is_auth_required(described):
        hint = HINT_AUTH_REQUIRED
        described = f"this etcd requires authentication and no user was given ({described})"
    elif "authentication failed" in described or "invalid auth token" in described or "permission denied" in described:
        hint = HINT_AUTH_REJECTED
    elif NOSPACE_ERROR in described:
        hint = HINT_NOSPACE
    else:
        hint = "read the members' logs: the cluster answered but refused the request"
    return EtcdError(f"etcd {what} failed at {where}: {described}", hint=hint)


def unreachable(what: str, tried: list[str]) -> ComponentUnavailable:
    """No endpoint answered: the hint follows what they did (refused, or hung)."""
    hung = tried and all("hung or paused" in t for t in tried)
    return ComponentUnavailable(
        "etcd", f"{what}: no endpoint answered ({'; '.join(tried)})", hint=HINT_HUNG if hung else HINT_UNREACHABLE
    )


def is_auth_required(details: str) -> bool:
    """etcd's words for a request without a user on a cluster with authentication enabled."""
    return "user name is empty" in details or "user name not found" in details


def _is_unreachable(exc: BaseException) -> bool:
    """Errors that mean 'this endpoint is down or stuck': try the next one."""
    import aetcd.exceptions
    import grpc

    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aetcd.exceptions.ConnectionFailedError):
        return True
    if isinstance(exc, aetcd.exceptions.ConnectionTimeoutError):
        return True
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    return False


def _describe(exc: BaseException, timeout: float) -> str:
    import grpc

    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"did not answer within {timeout:g} s (hung or paused?)"
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, grpc.aio.AioRpcError):
        details = (cause.details() or "").splitlines()[0][:160]
        if cause.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"did not answer within {timeout:g} s (hung or paused?)"
        if "Connection refused" in details or "connection refused" in details:
            return "connection refused"
        if cause.code() == grpc.StatusCode.UNAVAILABLE:
            return "did not answer (down, hung or cut off: " + details.split(";")[0] + ")"
        return f"{cause.code().name}: {details}"
    text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return text


class EtcdClient:
    """Synchronous etcd v3 client over aetcd. Every method is bounded by the configured timeouts.

    Usable from plain Python::

        with EtcdClient(EtcdConfig(endpoints=("http://127.0.0.1:2379",)), Timeouts()) as etcd:
            etcd.put(b"/demo", b"1")
    """

    def __init__(self, cfg: EtcdConfig, timeouts: Timeouts) -> None:
        self.cfg = cfg
        self.timeouts = timeouts
        self.endpoints = list(cfg.endpoints)
        self._preferred = 0
        self._loop = _LoopThread()
        self._clients: dict[str, Any] = {}
        self._credentials: Any = None
        self._closed = False

    # plumbing ----------------------------------------------------------------------------
    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for client in list(self._clients.values()):
            try:
                self._loop.run(client.close(), 2.0)
            except Exception:
                pass
        self._clients.clear()
        self._loop.stop()

    def _grpc_credentials(self) -> Any:
        if self._credentials is None and self.cfg.cacert:
            import grpc

            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=self.cfg.cacert.read_bytes(),
                private_key=self.cfg.key.read_bytes() if self.cfg.key else None,
                certificate_chain=self.cfg.cert.read_bytes() if self.cfg.cert else None,
            )
        return self._credentials

    def _client(self, endpoint: str) -> Any:
        client = self._clients.get(endpoint)
        if client is None:
            client = _new_aetcd_client(endpoint, self.cfg, self.timeouts, self._grpc_credentials())
            self._clients[endpoint] = client
        return client

    def _order(self) -> list[str]:
        n = len(self.endpoints)
        return [self.endpoints[(self._preferred + i) % n] for i in range(n)]

    def call(
        self, what: str, op: Callable[[Any], Awaitable[T]], endpoint: str | None = None, timeout: float | None = None
    ) -> T:
        """Run ``op(aetcd_client)`` on the first endpoint that answers, each try bounded by request timeout."""
        timeout = timeout or self.timeouts.request
        tried: list[str] = []
        for ep in [endpoint] if endpoint else self._order():
            try:
                result = self._loop.run(op(self._client(ep)), timeout)
            except Exception as e:
                if _is_unreachable(e):
                    tried.append(f"{strip_userinfo(ep)}: {_describe(e, timeout)}")
                    continue
                raise refusal(what, strip_userinfo(ep), _describe(e, timeout)) from e
            if endpoint is None:
                self._preferred = self.endpoints.index(ep)
            return result
        raise unreachable(what, tried)

    # KV ------------------------------------------------------------------------------------
    def put(self, key: bytes, value: bytes, lease: int | None = None) -> int:
        """Store a value; returns the revision of the write."""

        async def op(c: Any) -> int:
            import aetcd.rpc as rpc

            req = rpc.PutRequest(key=key, value=value, lease=lease or 0)
            resp = await c.kvstub.Put(req, timeout=self.timeouts.request, metadata=c.metadata)
            return int(resp.header.revision)

        return self.call("put", _connected(op))

    def get(self, key: bytes) -> KeyValue | None:
        async def op(c: Any) -> Any:
            return await c.get(key)

        r = self.call("get", op)
        return _kv(r) if r is not None else None

    def get_prefix(self, prefix: bytes, keys_only: bool = False) -> list[KeyValue]:
        async def op(c: Any) -> Any:
            return await c.get_prefix(prefix, keys_only=keys_only)

        return [_kv(kv) for kv in self.call("get prefix", op)]

    def delete(self, key: bytes) -> bool:
        async def op(c: Any) -> Any:
            return await c.delete(key)

        return self.call("delete", op) is not None

    def delete_prefix(self, prefix: bytes) -> int:
        async def op(c: Any) -> Any:
            return await c.delete_prefix(prefix)

        return int(self.call("delete prefix", op).deleted)

    def replace(self, key: bytes, expected: bytes, new: bytes) -> bool:
        """Compare-and-swap in one transaction: set ``new`` only if the value is ``expected``."""

        async def op(c: Any) -> Any:
            return await c.replace(key, expected, new)

        return bool(self.call("compare-and-swap", op))

    def create(self, key: bytes, value: bytes) -> bool:
        """Create only if absent (transaction on version == 0)."""

        async def op(c: Any) -> Any:
            ok, _ = await c.transaction(
                compare=[c.transactions.version(key) == 0],
                success=[c.transactions.put(key, value)],
                failure=[],
            )
            return ok

        return bool(self.call("create-if-absent", op))

    # leases --------------------------------------------------------------------------------
    def grant(self, ttl: int) -> tuple[int, int]:
        """Grant a lease; returns (lease id, TTL the server actually granted — it may raise small TTLs)."""

        async def op(c: Any) -> Any:
            return await c.lease(ttl)

        lease = self.call("lease grant", op)
        return int(lease.id), int(lease.ttl)

    def keepalive(self, lease_id: int) -> int:
        """One keep-alive round; returns the refreshed TTL (0 or less: the lease is gone)."""

        async def op(c: Any) -> Any:
            return await c.refresh_lease(lease_id)

        reply = self.call("lease keep-alive", op)
        return int(reply.TTL) if reply is not None else 0

    def revoke(self, lease_id: int) -> bool:
        """Revoke a lease; False if it had already expired (not an error: the goal is that it is gone)."""

        async def op(c: Any) -> Any:
            return await c.revoke_lease(lease_id)

        try:
            self.call("lease revoke", op)
        except EtcdError as e:
            if "lease not found" in e.message:
                return False
            raise
        return True

    def time_to_live(self, lease_id: int) -> int:
        async def op(c: Any) -> Any:
            return await c.get_lease_info(lease_id, keys=False)

        return int(self.call("lease time-to-live", op).TTL)

    # watch ---------------------------------------------------------------------------------
    def watch_prefix(self, prefix: bytes, start_revision: int | None = None) -> Watch:
        """Start watching; read events with ``Watch.events(n, timeout)``; always ``cancel()``."""
        events: queue.Queue[WatchEvent | BaseException] = queue.Queue()

        async def op(c: Any) -> Any:
            w = await c.watch_prefix(prefix, start_revision=start_revision)

            async def pump() -> None:
                try:
                    async for ev in w:
                        events.put(
                            WatchEvent(
                                ev.kind.value if hasattr(ev.kind, "value") else str(ev.kind),
                                ev.kv.key,
                                ev.kv.value,
                                ev.kv.mod_revision,
                            )
                        )
                except Exception as e:  # a dead member ends the stream with an error
                    events.put(e)

            task = asyncio.get_running_loop().create_task(pump())
            return w, task

        w, task = self.call("watch", op)
        return Watch(self, w, task, events)

    # server lock API (v3lock) ---------------------------------------------------------------
    def lock(self, name: bytes, lease_id: int, timeout: float) -> bytes | None:
        """Acquire the server-side lock ``name`` held by ``lease_id``; None if not acquired in ``timeout``."""

        async def op(c: Any) -> Any:
            method = c.channel.unary_unary("/v3lockpb.Lock/Lock")
            req = _field_bytes(1, name) + _field_int(2, lease_id)
            try:
                raw = await method(req, timeout=timeout, metadata=c.metadata)
            except Exception as e:
                import grpc

                # The deadline can expire on the server first; etcd then answers UNKNOWN "context
                # deadline exceeded" (and deletes its waiter key). Either way: not acquired in time.
                if isinstance(e, grpc.aio.AioRpcError) and (
                    e.code() == grpc.StatusCode.DEADLINE_EXCEEDED or "context deadline exceeded" in (e.details() or "")
                ):
                    return None
                raise
            return _decode_fields(raw).get(2, b"")

        # The lock call legitimately blocks while another holder has it, so a deadline there means
        # "not acquired"; only a refused/unavailable endpoint moves on to the next one.
        tried: list[str] = []
        for ep in self._order():
            try:
                key: bytes | None = self._loop.run(_connected(op)(self._client(ep)), timeout + self.timeouts.request)
                return key
            except Exception as e:
                if _is_unreachable(e):
                    tried.append(f"{strip_userinfo(ep)}: {_describe(e, timeout)}")
                    continue
                raise refusal("lock", strip_userinfo(ep), _describe(e, timeout)) from e
        raise unreachable("lock", tried)

    def unlock(self, key: bytes) -> None:
        async def op(c: Any) -> Any:
            method = c.channel.unary_unary("/v3lockpb.Lock/Unlock")
            return await method(_field_bytes(1, key), timeout=self.timeouts.request, metadata=c.metadata)

        self.call("unlock", _connected(op))

    # cluster -------------------------------------------------------------------------------
    def members(self) -> list[Member]:
        async def op(c: Any) -> Any:
            import aetcd.rpc as rpc

            return await c.clusterstub.MemberList(
                rpc.MemberListRequest(), timeout=self.timeouts.request, metadata=c.metadata
            )

        resp = self.call("member list", _connected(op))
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
                text = (f"did not answer, and the cluster lists {len(members)} members for "
                        f"{len(self.endpoints)} endpoints: it was removed from the cluster")  # fmt: skip
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

    def statuses(self) -> list[EndpointStatus]:
        """Status of every endpoint, asked concurrently: one slow or paused member costs one timeout, not N."""

        async def one(ep: str) -> EndpointStatus:
            import aetcd.rpc as rpc

            c = self._client(ep)
            try:
                await c.connect()
                r = await asyncio.wait_for(
                    c.maintenancestub.Status(rpc.StatusRequest(), timeout=self.timeouts.request, metadata=c.metadata),
                    self.timeouts.request,
                )
            except Exception as e:
                return EndpointStatus(endpoint=strip_userinfo(ep), ok=False, error=_describe(e, self.timeouts.request))
            return EndpointStatus(
                strip_userinfo(ep), True, "", r.header.member_id, r.leader, r.version, r.dbSize, r.raftTerm, r.raftIndex
            )

        async def all_of() -> list[EndpointStatus]:
            return list(await asyncio.gather(*(one(ep) for ep in self.endpoints)))

        return self._loop.run(all_of(), self.timeouts.request + 1)

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

        return self.call("revision", _connected(op))

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


class Watch:
    """A running watch; events arrive on a queue filled by the loop thread."""

    def __init__(
        self, client: EtcdClient, handle: Any, task: Any, events: queue.Queue[WatchEvent | BaseException]
    ) -> None:
        self._client, self._handle, self._task, self._events = client, handle, task, events

    def events(self, n: int, timeout: float) -> list[WatchEvent]:
        """Up to n events, waiting at most ``timeout`` seconds in total (fewer means they did not come)."""
        got: list[WatchEvent] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._events.get(timeout=remaining)
            except queue.Empty:
                break
            if isinstance(item, BaseException):
                raise ComponentUnavailable("etcd", f"watch ended: {_describe(item, timeout)}", HINT_UNREACHABLE)
            got.append(item)
        return got

    def cancel(self) -> None:
        try:
            self._client._loop.run(self._handle.cancel(), self._client.timeouts.request)
        except Exception:
            pass  # the member may be gone; the stream dies with the channel
        self._client._loop.loop.call_soon_threadsafe(self._task.cancel)


def _connected(op: Callable[[Any], Awaitable[T]]) -> Callable[[Any], Awaitable[T]]:
    """For calls that use aetcd's stubs directly: connect first (aetcd's methods do it themselves)."""

    async def run(c: Any) -> T:
        await c.connect()
        return await op(c)

    return run


def _kv(kv: Any) -> KeyValue:
    return KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


def _new_aetcd_client(endpoint: str, cfg: EtcdConfig, timeouts: Timeouts, credentials: Any) -> Any:
    import aetcd
    import grpc
    from aetcd import rpc, watcher

    class Client(aetcd.Client):  # type: ignore[misc]
        """aetcd.Client with TLS: aetcd only opens insecure channels."""

        async def connect(self) -> None:
            if self._connected.is_set():
                return
            target = f"{self._host}:{self._port}"
            options = list(self._options.items())
            if credentials is not None:
                self.channel = grpc.aio.secure_channel(target, credentials, options=options)
            else:
                self.channel = grpc.aio.insecure_channel(target, options=options)
            if self._username and self._password:
                self.auth_stub = rpc.AuthStub(self.channel)
                req = rpc.AuthenticateRequest(name=self._username, password=self._password)
                try:
                    resp = await self.auth_stub.Authenticate(req, timeout=self._timeout)
                    self.metadata = (("token", resp.token),)
                except grpc.aio.AioRpcError as e:
                    if "authentication is not enabled" not in (e.details() or ""):
                        raise
                    # etcdctl's behaviour: credentials for a cluster without authentication are
                    # ignored with a warning, so what etcdctl sees is what the checks see.
                    log.warning("etcd at %s has authentication disabled: the user given is ignored", target)
                    self.metadata = None  # type: ignore[assignment]
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata)
            self._connected.set()

    parts = urlsplit(endpoint)
    return Client(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 2379,
        username=cfg.username,
        password=cfg.password,
        timeout=timeouts.request,
        options=dict(CHANNEL_OPTIONS),
        connect_wait_timeout=int(max(1, timeouts.connect)),
    )


def connect(cfg: EtcdConfig, timeouts: Timeouts) -> EtcdClient:
    """A client that has proven it can reach at least one endpoint (else ComponentUnavailable)."""
    client = EtcdClient(cfg, timeouts)
    try:
        client.members()
    except BaseException:
        client.close()
        raise
    return client


class Keyspace:
    """A private key prefix for one test: ``key("a")`` -> b"/pytest-workshop/<run>/<test>/a"; ``cleanup()`` deletes it."""

    def __init__(self, client: EtcdClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix.encode()

    def key(self, name: str) -> bytes:
        return self.prefix + name.encode()

    def cleanup(self) -> None:
        self.client.delete_prefix(self.prefix)
