"""etcd members of the embedded lab: Debian's etcd-server on loopback, one uid per member.

Each member runs as its own uid so a partition can drop exactly its peer traffic with an
iptables owner match on loopback (research: that is what makes a one-machine partition work).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_workshop.errors import LabError
from pytest_workshop.lab import process
from pytest_workshop.lab.process import ProcessRecord

ETCD = "/usr/bin/etcd"
UID_BASE = 20000


def member_uid(client_port: int) -> int:
    """A uid per member, derived from its client port: ports are unique on a machine, so two labs
    never share a uid, and a partition rule (owner match) of one lab cannot touch the other."""
    return UID_BASE + client_port % 40000


# Short heartbeat/election: faster failover, and a 1 s minimum lease TTL (etcd derives the
# minimum from 1.5 election timeouts), which keeps lab3's lease-expiry check quick.
HEARTBEAT_MS = 50
ELECTION_MS = 600


@dataclass(frozen=True)
class MemberSpec:
    index: int
    name: str
    client_port: int
    peer_port: int
    data_dir: str
    log: str
    uid: int

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def member_specs(state_dir: Path, count: int, client_base: int, peer_base: int) -> list[MemberSpec]:
    return [
        MemberSpec(
            index=i,
            name=f"etcd{i}",
            client_port=client_base + i,
            peer_port=peer_base + i,
            data_dir=str(state_dir / "etcd" / f"etcd{i}"),
            log=str(state_dir / "logs" / f"etcd{i}.log"),
            uid=member_uid(client_base + i),
        )
        for i in range(1, count + 1)
    ]


def argv(spec: MemberSpec, cluster: list[MemberSpec], token: str, quota_bytes: int | None) -> list[str]:
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster)
    args = [
        ETCD,
        "--name", spec.name,
        "--data-dir", spec.data_dir,
        "--listen-client-urls", spec.client_url,
        "--advertise-client-urls", spec.client_url,
        "--listen-peer-urls", spec.peer_url,
        "--initial-advertise-peer-urls", spec.peer_url,
        "--initial-cluster", initial,
        "--initial-cluster-state", "new",
        "--initial-cluster-token", token,
        "--heartbeat-interval", str(HEARTBEAT_MS),
        "--election-timeout", str(ELECTION_MS),
        # pre-vote: a healed partition does not disrupt the cluster (research: 1-2.5 s without it).
        "--pre-vote",
        "--logger", "zap",
        "--log-outputs", "stderr",
    ]  # fmt: skip
    if quota_bytes:
        args += ["--quota-backend-bytes", str(quota_bytes)]
    return args


def start_member(spec: MemberSpec, cluster: list[MemberSpec], token: str, quota_bytes: int | None) -> ProcessRecord:
    data = Path(spec.data_dir)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(data, spec.uid, spec.uid)
    for sub in data.rglob("*"):
        shutil.chown(sub, spec.uid, spec.uid)
    return process.spawn(spec.name, argv(spec, cluster, token, quota_bytes), Path(spec.log), uid=spec.uid)


def ports_in_use(specs: list[MemberSpec]) -> list[int]:
    """Ports another process already listens on (another lab, a system etcd)."""
    import socket

    busy = []
    for port in [p for s in specs for p in (s.client_port, s.peer_port)]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def member_healthy(spec: MemberSpec, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(spec.client_url + "/health", timeout=timeout) as resp:
            return bool(json.loads(resp.read().decode()).get("health") == "true")
    except (OSError, ValueError):
        return False


def wait_healthy(specs: list[MemberSpec], timeout: float, alive: Callable[[], list[str]]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = alive()
        if dead:
            raise LabError(
                f"etcd member(s) {', '.join(dead)} exited during start-up",
                hint="read their logs under the lab's logs/ folder",
            )
        if all(member_healthy(s, timeout=0.5) for s in specs):
            return
        time.sleep(0.05)
    raise LabError(f"etcd cluster not healthy within {timeout:g} s", hint="read the logs under the lab's logs/ folder")


# --- partitions (iptables, loopback only) ------------------------------------------------------


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not shutil.which("iptables"):
        raise LabError("iptables is needed to partition an etcd member", hint="apt-get install iptables")
    return subprocess.run(["iptables", "-w", "5", *args], capture_output=True, text=True, check=check, timeout=15)


def chain_name(first_client_port: int) -> str:
    """iptables chain of one lab, named by its (machine-unique) first etcd port."""
    return f"WSLAB-{first_client_port}"


def partition(chain: str, spec: MemberSpec, cluster: list[MemberSpec]) -> None:
    """Cut spec off from its peers; its client port stays reachable (like a split switch)."""
    _iptables("-N", chain, check=False)
    if _iptables("-C", "OUTPUT", "-j", chain, check=False).returncode != 0:
        _iptables("-I", "OUTPUT", "1", "-j", chain)
    for peer in cluster:
        if peer.index == spec.index:
            continue
        # its outgoing connections to peers, and peers' connections to it
        _iptables(
            "-A",
            chain,
            "-o",
            "lo",
            "-p",
            "tcp",
            "-m",
            "owner",
            "--uid-owner",
            str(spec.uid),
            "--dport",
            str(peer.peer_port),
            "-j",
            "DROP",
        )
        _iptables(
            "-A",
            chain,
            "-o",
            "lo",
            "-p",
            "tcp",
            "-m",
            "owner",
            "--uid-owner",
            str(peer.uid),
            "--dport",
            str(spec.peer_port),
            "-j",
            "DROP",
        )


def heal(chain: str, spec: MemberSpec | None = None) -> None:
    """Remove the partition of one member (or all of them when spec is None)."""
    if _iptables("-S", chain, check=False).returncode != 0:
        return
    if spec is None:
        _iptables("-F", chain, check=False)
        return
    rules = _iptables("-S", chain).stdout.splitlines()
    for rule in rules:
        mine = f"--uid-owner {spec.uid} " in rule or f"--dport {spec.peer_port} " in rule
        if rule.startswith("-A ") and mine:
            _iptables(*("-D" + rule[2:]).split(), check=False)


def remove_chain(chain: str) -> None:
    if not shutil.which("iptables") or _iptables("-S", chain, check=False).returncode != 0:
        return
    _iptables("-D", "OUTPUT", "-j", chain, check=False)
    _iptables("-F", chain, check=False)
    _iptables("-X", chain, check=False)
