"""The embedded lab's Docker engine: Debian's dockerd with its own state, socket and bridge.

It never touches the host's firewall (--iptables=false): the lab must not change how the
machine's own Docker or network behaves. Published ports still work through docker-proxy.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_workshop.errors import LabError
from pytest_workshop.lab import process
from pytest_workshop.lab.process import ProcessRecord

DOCKERD = "/usr/sbin/dockerd"


@dataclass(frozen=True)
class EngineSpec:
    state_dir: str
    bridge: str
    bridge_cidr: str  # gateway address with prefix, e.g. 10.213.0.1/24
    address_pool: str  # user-defined networks come from here, e.g. 10.214.0.0/16

    @property
    def socket(self) -> str:
        return f"{self.state_dir}/docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> str:
        return f"{self.state_dir}/logs/dockerd.log"

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def argv(spec: EngineSpec) -> list[str]:
    d = spec.state_dir
    return [
        DOCKERD,
        "--data-root", f"{d}/docker/data",
        "--exec-root", f"{d}/docker/exec",
        "--pidfile", f"{d}/docker/dockerd.pid",
        "--host", spec.host,
        "--bridge", spec.bridge,
        "--iptables=false",
        "--ip-masq=false",
        "--default-address-pool", f"base={spec.address_pool},size=24",
        "--log-level", "warn",
    ]  # fmt: skip


def host_routes() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True, timeout=10
    )
    nets = []
    for r in json.loads(out.stdout or "[]"):
        dst = r.get("dst", "")
        if not dst or dst == "default":
            continue
        if True:
            try:
                nets.append(ipaddress.ip_network(dst, strict=False))
            except ValueError:
                continue
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


def check_ranges(spec: EngineSpec) -> None:
    """The lab's ranges must not overlap anything the host already routes."""
    mine = [ipaddress.ip_interface(spec.bridge_cidr).network, ipaddress.ip_network(spec.address_pool)]
    loopback = ipaddress.ip_network("127.0.0.0/8")
    for m in mine:
        if m.overlaps(loopback):
            raise LabError(
                f"the lab's range {m} overlaps loopback {loopback}",
                hint="choose private ranges with --bridge-cidr and --address-pool",
            )
    for net in host_routes():
        if net.prefixlen == 32 and net.is_loopback:
            continue
        for m in mine:
            if m.overlaps(net) and not net.is_loopback:
                raise LabError(
                    f"the lab's range {m} overlaps {net}, which this machine already routes",
                    hint="choose free ranges with --bridge-cidr and --address-pool",
                )


def check_bridge_free(spec: EngineSpec) -> None:
    # Never take over an existing interface: it may be another lab's, or the machine's own.
    if Path(f"/sys/class/net/{spec.bridge}").exists():
        raise LabError(
            f"network interface {spec.bridge} already exists (another lab?)",
            hint="stop that lab, or pick another name with --bridge",
        )


def create_bridge(spec: EngineSpec) -> None:
    for cmd in (
        ["ip", "link", "add", spec.bridge, "type", "bridge"],
        ["ip", "addr", "add", spec.bridge_cidr, "dev", spec.bridge],
        ["ip", "link", "set", spec.bridge, "up"],
    ):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise LabError(
                f"`{' '.join(cmd)}` failed: {r.stderr.strip()}",
                hint="the embedded lab needs root and iproute2",
            )


def pool_bridges(address_pool: str) -> list[str]:
    """Bridges dockerd made for user-defined networks (br-<id>) with an address in the lab's pool.

    dockerd keeps them when it stops (networks persist across restarts), so `down` removes
    them; the pool was checked free at `up`, so anything addressed inside it is the lab's.
    """
    pool = ipaddress.ip_network(address_pool)
    out = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "type", "bridge"], capture_output=True, text=True, timeout=10
    )
    found = []
    for link in json.loads(out.stdout or "[]"):
        name = link.get("ifname", "")
        addrs = [a.get("local") for a in link.get("addr_info", []) if a.get("local")]
        if name.startswith("br-") and any(ipaddress.ip_address(a) in pool for a in addrs):
            found.append(name)
    return found


def delete_bridge(bridge: str) -> bool:
    if not Path(f"/sys/class/net/{bridge}").exists():
        return False
    subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=10)
    return True


def start(spec: EngineSpec) -> ProcessRecord:
    for sub in ("docker/data", "docker/exec", "logs"):
        Path(spec.state_dir, sub).mkdir(parents=True, exist_ok=True)
    return process.spawn("dockerd", argv(spec), Path(spec.log))


def unmount_below(root: str) -> list[str]:
    """Unmount whatever dockerd left mounted under root (overlay, netns, shm), deepest first."""
    mounts = []
    for line in Path("/proc/mounts").read_text().splitlines():
        target = line.split()[1].encode().decode("unicode_escape")
        if target == root or target.startswith(root.rstrip("/") + "/"):
            mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, timeout=10)
    return mounts
