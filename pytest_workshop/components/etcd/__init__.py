"""etcd: a synchronous, always-bounded client over aetcd, and a view of the cluster.

Why a wrapper: aetcd (the maintained fork of python-etcd3's API) is asyncio-only, talks to one
endpoint, has no TLS option and no default timeout. Research measured every client hanging
forever on a paused member without a deadline. So every call here
- runs on a private event loop thread and is bounded three times (gRPC deadline,
  asyncio.wait_for, and the caller's future timeout);
- tries the endpoints in turn when one is down or times out, remembering which answered.

client.py (keys, leases, watches, locks), cluster.py (members, status, health, maintenance),
errors.py (what etcd's answers mean), view.py (the data returned), wire.py (aetcd's channels,
the event loop, the v3lock messages).
"""

import os

# gRPC's C core logs fork() notices to stderr whenever a lab process is spawned; only errors matter.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from pytest_workshop.components.etcd.client import EtcdClient, Keyspace, Watch, connect
from pytest_workshop.components.etcd.errors import (
    HINT_AUTH_REJECTED,
    HINT_AUTH_REQUIRED,
    HINT_HUNG,
    HINT_NOSPACE,
    HINT_REMOVED,
    HINT_UNREACHABLE,
    NOSPACE_ERROR,
    EtcdError,
    describe,
    is_auth_required,
    is_unreachable,
    refusal,
    unreachable,
)
from pytest_workshop.components.etcd.view import ClusterView, EndpointStatus, KeyValue, Member, WatchEvent

__all__ = [
    "HINT_AUTH_REJECTED",
    "HINT_AUTH_REQUIRED",
    "HINT_HUNG",
    "HINT_NOSPACE",
    "HINT_REMOVED",
    "HINT_UNREACHABLE",
    "NOSPACE_ERROR",
    "ClusterView",
    "EndpointStatus",
    "EtcdClient",
    "EtcdError",
    "KeyValue",
    "Keyspace",
    "Member",
    "Watch",
    "WatchEvent",
    "connect",
    "describe",
    "is_auth_required",
    "is_unreachable",
    "refusal",
    "unreachable",
]
