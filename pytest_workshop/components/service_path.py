"""The services a check's request passes through, and what the lab's control says of each.

A hint that names candidates names all of them: a port that stays DOWN may be Neutron's,
the northbound database's, ovn-northd's, the southbound database's, ovn-controller's or
ovs-vswitchd's fault. The lab's control (``[lab] control``) tells which of them run; the hint
then says what the evidence leaves: the one that is down, or, when all run, where to look
between them. Where the lab cannot tell, the hint lists what is left to look at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# (component, member) -> "running" | "stopped" | "paused" | None (the lab cannot tell)
StateOf = Callable[[str, str], str | None]


@dataclass(frozen=True)
class Service:
    member: str  # its name in the lab's control (embedded lab and faults/systemd.py alike)
    title: str
    unit: str  # DevStack's (or Debian's) systemd unit
    does: str


SERVICES = {
    s.member: s
    for s in (
        Service("keystone", "Keystone", "devstack@keystone", "authenticates every request"),
        Service("neutron-api", "the Neutron API", "devstack@q-svc", "writes ports to OVN's northbound database"),
        Service("kuryr", "kuryr-libnetwork", "devstack@kuryr-libnetwork", "turns Docker's calls into Neutron's"),
        Service("ovn-nb", "OVN's northbound database", "ovn-ovsdb-server-nb", "holds Neutron's logical ports"),
        Service("ovn-northd", "ovn-northd", "ovn-northd", "turns the northbound database into flows"),
        Service("ovn-sb", "OVN's southbound database", "ovn-ovsdb-server-sb", "carries flows and port bindings"),
        Service("ovn-controller", "ovn-controller", "ovn-controller", "binds ports on this chassis"),
        Service("ovsdb-server", "Open vSwitch's database", "ovsdb-server", "holds br-int and its ports"),
        Service("ovs-vswitchd", "ovs-vswitchd", "ovs-vswitchd", "switches the packets of br-int"),
    )
}

# What each kind of request passes through, in the order it does.
PATHS: dict[str, tuple[str, ...]] = {
    "port binding": ("neutron-api", "ovn-nb", "ovn-northd", "ovn-sb", "ovn-controller", "ovsdb-server", "ovs-vswitchd"),
    "datapath": ("ovn-nb", "ovn-northd", "ovn-sb", "ovn-controller", "ovsdb-server", "ovs-vswitchd"),
    "kuryr": ("kuryr", "keystone", "neutron-api"),
}


@dataclass(frozen=True)
class PathReading:
    """The services of one path as the lab's control sees them."""

    states: tuple[tuple[Service, str | None], ...]

    @property
    def down(self) -> list[tuple[Service, str]]:
        return [(s, state) for s, state in self.states if state is not None and state != "running"]

    @property
    def unknown(self) -> list[Service]:
        return [s for s, state in self.states if state is None]

    @property
    def evidence(self) -> str:
        """ "neutron-api running, ovn-sb stopped, ..."; or that the lab cannot tell."""
        known = [f"{s.member} {state}" for s, state in self.states if state is not None]
        if not known:
            return "the lab cannot tell which of " + ", ".join(s.member for s, _ in self.states) + " run"
        if self.unknown:
            known.append("the lab cannot tell of " + ", ".join(s.member for s in self.unknown))
        return ", ".join(known)

    def hint(self, when_all_run: str) -> str:
        """What the evidence leaves: start (or resume) what is down; else check what the lab
        cannot tell of; else ``when_all_run`` (the fault is between services that run)."""
        down = self.down
        if down:
            parts = []
            for s, state in down:
                verb, how = (
                    ("resume", f"it is paused: `sudo systemctl kill --signal=CONT {s.unit}`")
                    if state == "paused"
                    else ("start", f"DevStack: `sudo systemctl start {s.unit}`")
                )
                parts.append(f"{verb} {s.title} ({how}; it {s.does})")
            return "; ".join(parts)
        if self.unknown:
            units = " ".join(s.unit for s in self.unknown)
            return (
                f"one of {', '.join(s.member for s in self.unknown)} may be down: `sudo systemctl status {units}`; "
                f"if all run: {when_all_run}"
            )
        return f"all of {', '.join(s.member for s, _ in self.states)} run: {when_all_run}"

    def is_running(self, member: str) -> bool | None:
        for s, state in self.states:
            if s.member == member:
                return None if state is None else state == "running"
        return None


def read_path(name: str, state_of: StateOf) -> PathReading:
    """The services of ``PATHS[name]`` with their state (each asked once)."""
    return PathReading(tuple((SERVICES[m], state_of("openstack", m)) for m in PATHS[name]))
