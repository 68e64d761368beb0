"""Which kernel features the lab machine has, read from files only (works through testinfra too)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# feature -> (kernel config symbol, module name)
FEATURES: dict[str, tuple[str, str]] = {
    "bridge": ("CONFIG_BRIDGE", "bridge"),
    "veth": ("CONFIG_VETH", "veth"),
    "vxlan": ("CONFIG_VXLAN", "vxlan"),
    "overlay": ("CONFIG_OVERLAY_FS", "overlay"),
    "ip_vs": ("CONFIG_IP_VS", "ip_vs"),
}

# What each later lab needs it for, so a missing feature is reported with its consequence.
NEEDED_FOR = {
    "bridge": "Docker's bridge networks",
    "veth": "every container network",
    "vxlan": "Swarm overlay networks (lab2, lab5)",
    "overlay": "the overlay2 storage driver",
    "ip_vs": "Swarm's ingress routing mesh and VIP service endpoints (lab2)",
}


@dataclass(frozen=True)
class KernelFeatures:
    release: str
    present: dict[str, bool]
    how: dict[str, str]

    @property
    def missing(self) -> list[str]:
        return [f for f, ok in self.present.items() if not ok]

    @staticmethod
    def needed_for(feature: str) -> str:
        """What the workshop needs ``feature`` for (to report a missing one with its consequence)."""
        return NEEDED_FOR[feature]


def parse_kernel_config(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            out[key] = value
    return out


def detect(read: Callable[[str], bytes | None], exists: Callable[[str], bool]) -> KernelFeatures:
    """read(path) returns bytes or None; exists(path) says whether a path exists."""
    release = (read("/proc/sys/kernel/osrelease") or b"?").decode().strip()
    config: dict[str, str] = {}
    raw = read("/proc/config.gz")
    if raw:
        config = parse_kernel_config(gzip.decompress(raw).decode(errors="replace"))
    else:
        boot = read(f"/boot/config-{release}")
        if boot:
            config = parse_kernel_config(boot.decode(errors="replace"))
    builtin = (read(f"/lib/modules/{release}/modules.builtin") or b"").decode()
    modules_dep = (read(f"/lib/modules/{release}/modules.dep") or b"").decode()
    present: dict[str, bool] = {}
    how: dict[str, str] = {}
    for feature, (symbol, module) in FEATURES.items():
        if exists(f"/sys/module/{module}"):
            present[feature], how[feature] = True, "loaded"
        elif config.get(symbol) == "y" or f"/{module}.ko" in builtin:
            present[feature], how[feature] = True, "built in"
        elif config.get(symbol) == "m" and f"/{module}.ko" in modules_dep:
            present[feature], how[feature] = True, "module available (loads on demand)"
        else:
            present[feature] = False
            how[feature] = "not in this kernel" if config else "not loaded, and no kernel config to tell"
    return KernelFeatures(release=release, present=present, how=how)


def detect_local() -> KernelFeatures:
    from pathlib import Path

    def read(path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except OSError:
            return None

    return detect(read, lambda p: Path(p).exists())


def detect_on(host: Any) -> KernelFeatures:
    """Detect through a testinfra host (local, ssh, docker...): the lab machine, wherever it is."""

    def read(path: str) -> bytes | None:
        f = host.file(path)
        return bytes(f.content) if f.exists and f.is_file else None

    return detect(read, lambda p: bool(host.file(p).exists))
