"""Whether the Swarm's nodes see each other on their overlay networks: the evidence under an
app's failure that is the network's, not the app's.

Each node's engine keeps, per overlay network it has containers on, the peers it gossips with
(TCP/UDP 7946; `docker network inspect --verbose` lists them as "Peers"). Every node with a
container on the network lists every other such node when gossip passes; a node that lists
fewer is cut off from them, and the traffic of the app's containers on that network with it
(their addresses are learnt by gossip before VXLAN, UDP 4789, carries anything).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple

HINT_OVERLAY_CUT = (
    "the nodes must reach each other on TCP and UDP 7946 (gossip) and UDP 4789 (VXLAN): look for a "
    "firewall rule on the node named (`iptables -S`, `nft list ruleset`); lab2's LAB2-13 checks the overlay alone"
)


@dataclass(frozen=True)
class OverlayCut:
    network: str
    unseen: dict[str, list[str]]  # node -> the nodes with containers on the network it does not see

    @property
    def message(self) -> str:
        views = "; ".join(f"{node} sees none of {', '.join(others)}" for node, others in sorted(self.unseen.items()))
        return f"the Swarm's nodes do not see each other on overlay network {self.network} ({views})"


@dataclass(frozen=True)
class DatapathCut:
    network: str
    unreached: list[str]  # "node2 -> node3 (10.0.1.5)"

    @property
    def message(self) -> str:
        return (
            f"containers on overlay network {self.network} do not reach each other across nodes "
            f"({'; '.join(self.unreached)}: no answer)"
        )


def overlay_cut(engines: list[Any], confirm_after: float = 2.0) -> OverlayCut | DatapathCut | None:
    """The first overlay network on which a node does not see the others, read twice
    ``confirm_after`` apart (peers of a task that just started take a moment to appear); else
    the first on which a container does not reach one on the next node (gossip passes, VXLAN
    does not); None when both pass, or no overlay has containers on two nodes."""
    views = read_views(engines)
    first = _cut(views)
    if first is not None:
        time.sleep(confirm_after)
        views = read_views(engines)
        again = _cut(views, only=first.network)
        if again is not None:
            return again
    return _datapath_cut(views)


# From a container: ICMP where it has ping; else a TCP connect, where a refusal (a reset came
# back) is an answer as good as an accept.
REACH = (
    'command -v ping >/dev/null 2>&1 && exec ping -c 1 -W 2 "$0"; '
    "exec python3 -c 'import socket,sys\ns=socket.socket(); s.settimeout(2)\n"
    'try: s.connect((sys.argv[1], 9))\nexcept ConnectionRefusedError: pass\n\' "$0"'
)


class NodeView(NamedTuple):
    """One node's engine on its overlays: its address, per network the addresses of the peers it
    sees, and one of its own containers there (id, address)."""

    addr: str
    peers: dict[str, set[str]]
    client: Any = None
    ends: dict[str, tuple[str, str]] = {}


Views = dict[str, NodeView]  # by node name


def read_views(engines: list[Any]) -> Views:
    """Each engine's view, from one verbose inspect per overlay (peers and local containers)."""
    views: Views = {}
    for client in engines:
        try:
            info = client.info()
            node, addr = info.get("Name", "?"), info.get("Swarm", {}).get("NodeAddr", "")
            peers, ends = {}, {}
            for net in client.api.networks(filters={"driver": "overlay"}):
                if net.get("Ingress") or net.get("Scope") != "swarm":
                    continue
                inspected = client.api.inspect_network(net["Id"], verbose=True)
                peers[net["Name"]] = {p.get("IP", "") for p in inspected.get("Peers") or []}
                for cid, c in (inspected.get("Containers") or {}).items():
                    ip = (c.get("IPv4Address") or "").split("/")[0]
                    if ip and not cid.startswith("lb-"):
                        ends[net["Name"]] = (cid, ip)
                        break
        except Exception:
            continue  # an engine that does not answer is its own failure, told elsewhere
        views[node] = NodeView(addr, peers, client, ends)
    return views


def _datapath_cut(views: Views) -> DatapathCut | None:
    """Around the ring of nodes, a container of each node's asks one of the next node's, on
    each overlay both have containers on (all at once: one bound for the lot)."""
    from concurrent.futures import ThreadPoolExecutor

    networks = sorted({n for v in views.values() for n in v.ends})
    for network in networks:
        ends = [(node, v.client, *v.ends[network]) for node, v in sorted(views.items()) if network in v.ends]
        if len(ends) < 2:
            continue
        pairs = [(ends[i], ends[(i + 1) % len(ends)]) for i in range(len(ends))] if len(ends) > 2 else [tuple(ends)]
        with ThreadPoolExecutor(len(pairs)) as asking:
            answers = list(asking.map(lambda p: _reaches(p[0], p[1]), pairs))
        unreached = [f"{a[0]} -> {b[0]} ({b[3]})" for (a, b), ok in zip(pairs, answers, strict=True) if ok is False]
        if unreached:
            return DatapathCut(network, unreached)
    return None


def _reaches(src: tuple[str, Any, str, str], dst: tuple[str, Any, str, str]) -> bool | None:
    """True/False; None where the container cannot ask (no shell, gone, an engine that fails)."""
    try:
        result = src[1].containers.get(src[2]).exec_run(["sh", "-c", REACH, dst[3]])
    except Exception:
        return None
    if result.exit_code in (126, 127):
        return None
    return bool(result.exit_code == 0)


def _cut(views: Views, only: str | None = None) -> OverlayCut | None:
    names = sorted({n for v in views.values() for n in v.peers})

    def name_of(addr: str) -> str:
        return next((n for n, v in views.items() if v.addr == addr), addr)

    for network in names if only is None else [only]:
        # a node is on the network when it sees at least itself there
        on = {v.addr for v in views.values() if v.addr and v.addr in v.peers.get(network, set())}
        if len(on) < 2:
            continue
        unseen = {}
        for node, v in views.items():
            if v.addr in on:
                missing = sorted(name_of(a) for a in on - v.peers.get(network, set()))
                if missing:
                    unseen[node] = missing
        if unseen:
            return OverlayCut(network, unseen)
    return None
