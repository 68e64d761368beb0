"""etcd members of the embedded lab: Debian's etcd-server, member i on node i.

Each member listens on its node's address (client :2379, peer :2380), runs inside the node's
namespaces (a node crash takes it down, as it would a real machine) and under its own uid.
The host reaches the members through the lab's forwarder on 127.0.0.1 (see forwarder.py).

A lab with ``etcd_tls`` serves clients over TLS and requires client certificates, as an
attendee VM's etcd may (etcdctl's ``--cacert/--cert/--key``); peers stay plain HTTP inside the lab.
"""

from __future__ import annotations

import functools
import shutil
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_workshop.components.waiting import wait_for
from pytest_workshop.errors import LabError
from pytest_workshop.lab import nodes
from pytest_workshop.lab.process import ProcessRecord

ETCD = "/usr/bin/etcd"
UID_BASE = 20000
CLIENT_PORT = 2379
PEER_PORT = 2380
PARTITION_TAG = "workshop-etcd-partition"
# Short heartbeat/election: faster failover, and a 1 s minimum lease TTL (etcd derives the
# minimum from 1.5 election timeouts), which keeps lab3's lease-expiry check quick.
HEARTBEAT_MS = 50
ELECTION_MS = 600


def member_uid(forwarded_port: int) -> int:
    """A uid per member, derived from its (machine-unique) forwarded port: two labs never share one."""
    return UID_BASE + forwarded_port % 40000


@dataclass(frozen=True)
class MemberSpec:
    index: int
    name: str
    node: str  # the node it runs on
    address: str  # the node's address
    forwarded_port: int  # 127.0.0.1:<port> on the host reaches this member's client port
    data_dir: str
    log: str
    uid: int
    tls_dir: str = ""  # the lab's certificates (lab/certs.py): clients over https with client certificates

    @property
    def scheme(self) -> str:
        return "https" if self.tls_dir else "http"

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://{self.address}:{CLIENT_PORT}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.address}:{PEER_PORT}"

    @property
    def forwarded_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.forwarded_port}"

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def member_specs(
    state_dir: Path, node_specs: list[nodes.NodeSpec], count: int, port_base: int, tls_dir: Path | None = None
) -> list[MemberSpec]:
    if count > len(node_specs):
        raise LabError(
            f"{count} etcd members need {count} nodes, the lab has {len(node_specs)}",
            hint="raise --nodes or lower --etcd-members",
        )
    return [
        MemberSpec(
            index=n.index,
            name=f"etcd{n.index}",
            node=n.name,
            address=n.address,
            forwarded_port=port_base + n.index,
            data_dir=str(state_dir / "etcd" / f"etcd{n.index}"),
            log=str(state_dir / "logs" / f"etcd{n.index}.log"),
            uid=member_uid(port_base + n.index),
            tls_dir=str(tls_dir) if tls_dir else "",
        )
        for n in node_specs[:count]
    ]


def argv(spec: MemberSpec, cluster: list[MemberSpec], token: str, quota_bytes: int | None) -> list[str]:
    initial = ",".join(f"{m.name}={m.peer_url}" for m in cluster)
    # fmt: skip below: flag and value side by side, as etcd's documentation writes them
    args = [
        ETCD,
        "--name", spec.name,
        "--data-dir", spec.data_dir,
        "--listen-client-urls", f"{spec.client_url},{spec.scheme}://127.0.0.1:{CLIENT_PORT}",
        "--advertise-client-urls", spec.client_url,
        "--listen-peer-urls", spec.peer_url,
        "--initial-advertise-peer-urls", spec.peer_url,
        "--initial-cluster", initial,
        "--initial-cluster-state", "new",
        "--initial-cluster-token", token,
        "--heartbeat-interval", str(HEARTBEAT_MS),
        "--election-timeout", str(ELECTION_MS),
        # pre-vote: a healed partition does not disrupt the cluster (without it, 1-2.5 s of elections).
        "--pre-vote",
        "--logger", "zap",
        "--log-outputs", "stderr",
    ]  # fmt: skip
    if quota_bytes:
        args += ["--quota-backend-bytes", str(quota_bytes)]
    if spec.tls_dir:
        own = member_tls_dir(spec)
        args += [
            "--cert-file",
            str(own / "server-cert.pem"),
            "--key-file",
            str(own / "server-key.pem"),
            "--client-cert-auth",
            "--trusted-ca-file",
            str(own / "ca.pem"),
        ]
    return args


def member_tls_dir(spec: MemberSpec) -> Path:
    """The member's copy of the server's certificate and key: it runs under its own uid, and a key
    must be readable by its owner only."""
    return Path(spec.data_dir).parent / f"{spec.name}-tls"


def _install_certificates(spec: MemberSpec) -> None:
    own = member_tls_dir(spec)
    own.mkdir(mode=0o700, exist_ok=True)
    for name in ("server-cert.pem", "server-key.pem", "ca.pem"):
        target = own / name
        target.write_bytes((Path(spec.tls_dir) / name).read_bytes())
        target.chmod(0o600)
        shutil.chown(target, spec.uid, spec.uid)
    shutil.chown(own, spec.uid, spec.uid)


@functools.lru_cache(maxsize=64)
def client_ssl_context(spec: MemberSpec) -> ssl.SSLContext | None:
    """How the lab's own probes (health at up, status) reach a TLS member: the lab's client
    certificate. Made once per member: `up` polls health every 50 ms."""
    if not spec.tls_dir:
        return None
    client = Path(spec.tls_dir) / "client"
    context = ssl.create_default_context(cafile=str(client / "ca.pem"))
    context.load_cert_chain(str(client / "cert.pem"), str(client / "key.pem"))
    return context


def start_member(
    spec: MemberSpec, cluster: list[MemberSpec], token: str, quota_bytes: int | None, init: ProcessRecord
) -> ProcessRecord:
    data = Path(spec.data_dir)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.mkdir(mode=0o700, exist_ok=True)
    for path in [data, *data.rglob("*")]:
        shutil.chown(path, spec.uid, spec.uid)
    if spec.tls_dir:
        _install_certificates(spec)
    return nodes.nsenter(init, argv(spec, cluster, token, quota_bytes), Path(spec.log), spec.name, uid=spec.uid)


def ports_in_use(specs: list[MemberSpec]) -> list[int]:
    """Forwarded ports another process already listens on (another lab, a system etcd)."""
    import socket

    busy = []
    for spec in specs:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", spec.forwarded_port))
            except OSError:
                busy.append(spec.forwarded_port)
    return busy


def member_healthy(spec: MemberSpec, timeout: float = 1.0) -> bool:
    from pytest_workshop.components import http

    answer = http.request(spec.forwarded_url + "/health", timeout, ssl_context=client_ssl_context(spec))
    document = answer.json() if answer.status == 200 else None
    return isinstance(document, dict) and document.get("health") == "true"


def wait_healthy(specs: list[MemberSpec], timeout: float, dead: Callable[[], list[str]]) -> None:
    def exited() -> str | None:
        gone = dead()
        return f"etcd member(s) {', '.join(gone)} exited during start-up" if gone else None

    wait_for(
        "etcd cluster not healthy",
        lambda: all(member_healthy(s, timeout=0.5) for s in specs),
        timeout,
        step=0.05,
        error=LabError,
        abort=exited,
        observe=lambda: "",
        hint="read the logs under the lab's logs/ folder",
    )


# --- partitions: peer traffic dropped inside the member's node ---------------------------------


def _node_iptables(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        ["ip", "netns", "exec", netns, "iptables", "-w", "5", *args], capture_output=True, text=True, timeout=15
    )
    if check and r.returncode != 0:
        raise LabError(f"iptables in {netns} failed: {r.stderr.strip()}", hint="apt-get install iptables")
    return r


def _rules(port_match: str) -> list[list[str]]:
    tag = ["-m", "comment", "--comment", PARTITION_TAG, "-j", "DROP"]
    return [["INPUT", "-p", "tcp", "--dport", port_match, *tag], ["OUTPUT", "-p", "tcp", "--dport", port_match, *tag]]


def partition(netns: str) -> None:
    """Cut a member off from its peers; its clients can still reach it (a split peer network)."""
    for rule in _rules(str(PEER_PORT)):
        if _node_iptables(netns, "-C", *rule, check=False).returncode != 0:
            _node_iptables(netns, "-I", *rule)


def heal(netns: str) -> None:
    for rule in _rules(str(PEER_PORT)):
        while _node_iptables(netns, "-C", *rule, check=False).returncode == 0:
            _node_iptables(netns, "-D", *rule)


def is_partitioned(netns: str) -> bool:
    return _node_iptables(netns, "-C", *_rules(str(PEER_PORT))[0], check=False).returncode == 0
