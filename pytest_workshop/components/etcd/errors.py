"""What etcd's answers mean: one line and a hint for each way a request can fail (no answer,
hung, refused for lack of a user, out of space, ...)."""

from __future__ import annotations

import asyncio

from pytest_workshop.components.etcd.view import EndpointStatus
from pytest_workshop.errors import CheckFailed, ComponentUnavailable

HINT_UNREACHABLE = (
    "start etcd (systemctl start etcd) on the members that are down, and check that ETCDCTL_ENDPOINTS / "
    "[etcd] endpoints match where it listens"
)
HINT_NOSPACE = (
    "etcd is out of space (NOSPACE alarm): delete what filled it, compact, defragment every member "
    "(`etcdctl defrag --cluster`), then `etcdctl alarm disarm`"
)
NOSPACE_ERROR = "database space exceeded"  # etcd's words when a write hits the quota

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

HINT_TLS = (
    "the TLS handshake failed: give the CA, client certificate and key the cluster trusts "
    "(ETCDCTL_CACERT / ETCDCTL_CERT / ETCDCTL_KEY, or [etcd] cacert / cert / key), and use https:// "
    "endpoints; `etcdctl endpoint health` with the same files shows the same"
)
TLS_FAILED = "TLS handshake failed"  # describe()'s words, so unreachable() can pick HINT_TLS
CLOSED = "closed the connection at once"


HINT_LEADER_STALL = (
    "`etcdctl endpoint status -w table` shows whether the leader changed (another member, a higher RAFT "
    "TERM); the members' logs say when and why ('lost leader', 'elected leader', 'slow fdatasync', "
    "'apply request took too long'): a frozen or overloaded member, or a slow disk"
)
# etcd's words for what happened to a request the cluster could not serve, in etcd's own terms
SERVER_MEANINGS = {
    "requested lease not found": "the lease was gone before the request: etcd revokes a lease whose TTL runs "
    "out without a keep-alive reaching the leader, which a stalled leader or an election delays",
    "leader changed": "the leader changed while the request was in flight (an election)",
    "no leader": "the cluster has no leader right now (an election, or quorum lost)",
    "request timed out": "the cluster did not commit the request in time (a stalled leader, a slow disk, "
    "or a member cut off)",
}


class EtcdError(CheckFailed):
    """etcd answered, but with an error (for example NOSPACE, or a request it rejects)."""

    @property
    def is_nospace(self) -> bool:
        return NOSPACE_ERROR in self.message


def refusal(what: str, where: str, described: str) -> EtcdError:
    """etcd answered a request with an error: the failure its words mean, with the hint for it."""
    if is_auth_required(described):
        hint = HINT_AUTH_REQUIRED
        described = f"this etcd requires authentication and no user was given ({described})"
    elif "authentication failed" in described or "invalid auth token" in described or "permission denied" in described:
        hint = HINT_AUTH_REJECTED
    elif NOSPACE_ERROR in described:
        hint = HINT_NOSPACE
    elif meaning := next((m for phrase, m in SERVER_MEANINGS.items() if phrase in described), None):
        hint = HINT_LEADER_STALL
        described = f"{meaning} ({described})"
    else:
        hint = "read the members' logs: the cluster answered but refused the request"
    return EtcdError(f"etcd {what} failed at {where}: {described}", hint=hint)


def unreachable(what: str, tried: list[str], stall: str | None = None) -> ComponentUnavailable:
    """No endpoint answered: the hint follows what they did (refused, hung, or refused our TLS).
    ``stall``: the members that timed out answer their status, so they wait on another (stalled_on)."""
    if stall:
        return ComponentUnavailable(
            "etcd", f"{what}: no endpoint answered ({'; '.join(tried)}); {stall}", hint=HINT_LEADER_STALL
        )
    if tried and all("hung or paused" in t for t in tried):
        hint = HINT_HUNG
    elif tried and all(TLS_FAILED in t or (CLOSED in t and t.startswith("http://")) for t in tried):
        hint = HINT_TLS
    else:
        hint = HINT_UNREACHABLE
    return ComponentUnavailable("etcd", f"{what}: no endpoint answered ({'; '.join(tried)})", hint=hint)


def stalled_on(timed_out: list[EndpointStatus], everyone: list[EndpointStatus]) -> str | None:
    """Why members that answer their own status (served without the leader) did not answer a
    request: the leader they wait on, when it does not answer, or there is none. None when a
    member that timed out does not answer its status either: that one is hung itself."""
    if not timed_out or not all(s.ok for s in timed_out):
        return None
    waiting = ", ".join(s.endpoint for s in timed_out)
    leaders = {s.leader_id for s in timed_out}
    if leaders == {0}:
        return f"{waiting} answer their status but have no leader: an election is under way, or quorum is lost"
    leader = next(iter(leaders))
    at = next((s for s in everyone if s.member_id == leader), None)
    if at is None or not at.ok:
        silent = [s.endpoint for s in everyone if not s.ok]
        where = (
            f"at {at.endpoint}"
            if at
            else f"(of the configured endpoints, {', '.join(silent)} do not answer)"
            if silent
            else "at any configured endpoint"
        )
        return (
            f"{waiting} answer their status but wait on their leader, member {leader:x}, which does not answer "
            f"{where} (stalled: hung, paused, or cut off)"
        )
    return (
        f"{waiting} answer their status now, with member {leader:x} at {at.endpoint} leading (raft term "
        f"{at.raft_term}), but did not commit the request in time: an election (the leader stalled, paused or "
        "cut off) or a leader slow to commit (overloaded, a slow disk) takes that long"
    )


def is_auth_required(details: str) -> bool:
    """etcd's words for a request without a user on a cluster with authentication enabled."""
    return "user name is empty" in details or "user name not found" in details


def is_unreachable(exc: BaseException) -> bool:
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


def describe(exc: BaseException, timeout: float) -> str:
    import grpc

    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"did not answer within {timeout:g} s ([timeouts] request; hung or paused?)"
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, grpc.aio.AioRpcError):
        details = (cause.details() or "").splitlines()[0][:160]
        if cause.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"did not answer within {timeout:g} s ([timeouts] request; hung or paused?)"
        if "Connection refused" in details or "connection refused" in details:
            return "connection refused"
        last = details.rsplit(": ", 1)[-1]
        if "TSI_" in details or "handshake" in details.lower() or "ssl" in details.lower():
            return f"{TLS_FAILED} ({last})"
        if details.endswith("Socket closed"):
            # a TLS server meeting a plaintext client (http:// endpoint) does exactly this
            return f"{CLOSED} (a TLS endpoint reached over http://?)"
        if cause.code() == grpc.StatusCode.UNAVAILABLE:
            return "did not answer (down, hung or cut off: " + details.split(";")[0] + ")"
        return f"{cause.code().name}: {details}"
    text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return text
