"""Below the client: aetcd's channels (with TLS, which aetcd does not offer), the private event
loop every call runs on, and the v3lock messages encoded by hand (aetcd ships no stubs for them)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pytest_workshop.components.etcd.view import KeyValue
from pytest_workshop.config.model import EtcdConfig, Timeouts

T = TypeVar("T")
log = logging.getLogger("pytest_workshop.etcd")

# Fast reconnects: a member that comes back must be usable within a second, not after
# gRPC's default exponential backoff (which grows to two minutes).
CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
    "grpc.enable_retries": 0,
}


# --- protobuf by hand for the v3lock service (aetcd ships no stubs for it) --------------------


def varint(n: int) -> bytes:
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


def field_bytes(number: int, data: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def decode_fields(buf: bytes) -> dict[int, Any]:
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


class LoopThread:
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


def connected(op: Callable[[Any], Awaitable[T]]) -> Callable[[Any], Awaitable[T]]:
    """For calls that use aetcd's stubs directly: connect first (aetcd's methods do it themselves)."""

    async def run(c: Any) -> T:
        await c.connect()
        return await op(c)

    return run


def kv_of(kv: Any) -> KeyValue:
    return KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


def new_aetcd_client(endpoint: str, cfg: EtcdConfig, timeouts: Timeouts, credentials: Any) -> Any:
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
