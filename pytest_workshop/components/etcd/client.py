"""The etcd client: every call bounded, endpoints tried in turn; keys, transactions, leases,
watches and the lock API (the cluster half is cluster.py)."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pytest_workshop.components.etcd.cluster import ClusterChecks
from pytest_workshop.components.etcd.errors import (
    HINT_UNREACHABLE,
    EtcdError,
    describe,
    is_unreachable,
    refusal,
    stalled_on,
    unreachable,
)
from pytest_workshop.components.etcd.view import KeyValue, WatchEvent
from pytest_workshop.components.etcd.wire import (
    LoopThread,
    connected,
    decode_fields,
    field_bytes,
    field_int,
    kv_of,
    new_aetcd_client,
)
from pytest_workshop.config.model import EtcdConfig, Timeouts, strip_userinfo
from pytest_workshop.errors import ComponentUnavailable

T = TypeVar("T")


class EtcdClient(ClusterChecks):
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
        self._loop = LoopThread()
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
            client = new_aetcd_client(endpoint, self.cfg, self.timeouts, self._grpc_credentials())
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
                if is_unreachable(e):
                    tried.append(f"{strip_userinfo(ep)}: {describe(e, timeout)}")
                    continue
                raise refusal(what, strip_userinfo(ep), describe(e, timeout)) from e
            if endpoint is None:
                self._preferred = self.endpoints.index(ep)
            return result
        raise unreachable(what, tried, self._stall(tried))

    def _stall(self, tried: list[str]) -> str | None:
        """Endpoints that all timed out may be waiting on a stalled leader: their status, which a
        member serves without its leader, says (a short bound: this only explains a failure)."""
        if not tried or not all("hung or paused" in t for t in tried):
            return None
        try:
            everyone = self.statuses(timeout=min(2.0, self.timeouts.request))
        except Exception:
            return None
        timed_out = [s for s in everyone if any(t.startswith(f"{s.endpoint}: ") for t in tried)]
        return stalled_on(timed_out, everyone)

    # KV ------------------------------------------------------------------------------------
    def put(self, key: bytes, value: bytes, lease: int | None = None) -> int:
        """Store a value; returns the revision of the write."""

        async def op(c: Any) -> int:
            import aetcd.rpc as rpc

            req = rpc.PutRequest(key=key, value=value, lease=lease or 0)
            resp = await c.kvstub.Put(req, timeout=self.timeouts.request, metadata=c.metadata)
            return int(resp.header.revision)

        return self.call("put", connected(op))

    def get(self, key: bytes) -> KeyValue | None:
        async def op(c: Any) -> Any:
            return await c.get(key)

        r = self.call("get", op)
        return kv_of(r) if r is not None else None

    def get_prefix(self, prefix: bytes, keys_only: bool = False) -> list[KeyValue]:
        async def op(c: Any) -> Any:
            return await c.get_prefix(prefix, keys_only=keys_only)

        return [kv_of(kv) for kv in self.call("get prefix", op)]

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
            req = field_bytes(1, name) + field_int(2, lease_id)
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
            return decode_fields(raw).get(2, b"")

        # The lock call legitimately blocks while another holder has it, so a deadline there means
        # "not acquired"; only a refused/unavailable endpoint moves on to the next one.
        tried: list[str] = []
        for ep in self._order():
            try:
                key: bytes | None = self._loop.run(connected(op)(self._client(ep)), timeout + self.timeouts.request)
                return key
            except Exception as e:
                if is_unreachable(e):
                    tried.append(f"{strip_userinfo(ep)}: {describe(e, timeout)}")
                    continue
                raise refusal("lock", strip_userinfo(ep), describe(e, timeout)) from e
        raise unreachable("lock", tried)

    def unlock(self, key: bytes) -> None:
        async def op(c: Any) -> Any:
            method = c.channel.unary_unary("/v3lockpb.Lock/Unlock")
            return await method(field_bytes(1, key), timeout=self.timeouts.request, metadata=c.metadata)

        self.call("unlock", connected(op))

    # cluster -------------------------------------------------------------------------------


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
                raise ComponentUnavailable("etcd", f"watch ended: {describe(item, timeout)}", HINT_UNREACHABLE)
            got.append(item)
        return got

    def cancel(self) -> None:
        try:
            self._client._loop.run(self._handle.cancel(), self._client.timeouts.request)
        except Exception:
            pass  # the member may be gone; the stream dies with the channel
        self._client._loop.loop.call_soon_threadsafe(self._task.cancel)


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
