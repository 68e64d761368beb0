"""Lab control for a real workshop machine: its services are systemd units, reached through
testinfra (``[lab] host``: ``local://``, ``ssh://root@10.0.0.7``...). Same interface as the
embedded lab's control, so every scenario works unchanged.

Units follow DevStack and Debian's names; ``UNITS`` maps (component, member) -> unit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_workshop.errors import WorkshopError

if TYPE_CHECKING:
    from pytest_workshop.lab.control import MemberControl

UNITS: dict[tuple[str, str], str] = {
    ("docker", "docker"): "docker",
    ("etcd", "etcd"): "etcd",
    ("openstack", "dockerd"): "docker",
    ("openstack", "keystone"): "devstack@keystone",
    ("openstack", "neutron-api"): "devstack@q-svc",
    ("openstack", "kuryr"): "devstack@kuryr-libnetwork",
    ("openstack", "ovn-agent"): "devstack@q-ovn-agent",
    ("openstack", "ovn-controller"): "ovn-controller",
    ("openstack", "ovn-northd"): "ovn-northd",
    ("openstack", "ovn-nb"): "ovn-ovsdb-server-nb",
    ("openstack", "ovn-sb"): "ovn-ovsdb-server-sb",
    ("openstack", "ovs-vswitchd"): "ovs-vswitchd",
    ("openstack", "ovsdb-server"): "ovsdb-server",
    ("openstack", "mariadb"): "mariadb",
}
# what "cutting a member off" drops (inbound and outbound), per component: Swarm's control plane is
# TCP 2377, its gossip TCP and UDP 7946, its overlay data (VXLAN) UDP 4789
PARTITION_PORTS: dict[str, tuple[tuple[str, int], ...]] = {
    "etcd": (("tcp", 2380),),
    "docker": (("tcp", 2377), ("tcp", 7946), ("udp", 7946), ("udp", 4789)),
    "openstack": (("tcp", 6641), ("tcp", 6642)),
}


class SystemdMember:
    def started_by_the_lab(self) -> bool:
        return True  # a unit of the machine: systemd starts it

    def __init__(self, host: Any, component: str, name: str, unit: str) -> None:
        self.host, self.component, self.name, self.unit = host, component, name, unit

    def _run(self, command: str, *args: str) -> Any:
        result = self.host.run(command, *args)
        if result.rc != 0:
            raise WorkshopError(
                f"`{command % args if args else command}` failed on the lab machine: {result.stderr.strip()[:200]}",
                hint="breaking a real lab needs root there (sudo) and systemd",
            )
        return result

    def is_running(self) -> bool:
        return bool(self.host.run("systemctl is-active --quiet %s", self.unit).rc == 0)

    def is_paused(self) -> bool:
        pid = self.host.run("systemctl show -p MainPID --value %s", self.unit).stdout.strip()
        if not pid or pid == "0":
            return False
        return bool(self.host.run("ps -o stat= -p %s", pid).stdout.strip().startswith("T"))

    def stop(self) -> None:
        self._run("systemctl stop %s", self.unit)

    def kill(self) -> None:
        self._run("systemctl kill --signal=KILL %s", self.unit)

    def start(self) -> None:
        self._run("systemctl start %s", self.unit)

    def pause(self) -> None:
        self._run("systemctl kill --signal=STOP %s", self.unit)

    def resume(self) -> None:
        self._run("systemctl kill --signal=CONT %s", self.unit)

    def _rules(self) -> list[tuple[str, ...]]:
        rules: list[tuple[str, ...]] = []
        for proto, port in PARTITION_PORTS.get(self.component, ()):
            for chain, flag in (("INPUT", "--dport"), ("OUTPUT", "--dport"), ("INPUT", "--sport")):
                rules.append(
                    (
                        chain,
                        "-p",
                        proto,
                        flag,
                        str(port),
                        "-m",
                        "comment",
                        "--comment",
                        f"pytest-workshop partition {self.component}",
                        "-j",
                        "DROP",
                    )
                )
        return rules

    def _iptables(self, action: str, rule: tuple[str, ...]) -> Any:
        # Every word is an argument of its own, quoted by testinfra: the comment has spaces.
        return self.host.run("iptables " + action + " %s" * len(rule), *rule)

    def partition(self) -> None:
        for rule in self._rules():
            if self._iptables("-C", rule).rc != 0:
                result = self._iptables("-I", rule)
                if result.rc != 0:
                    raise WorkshopError(
                        f"iptables refused a partition rule on the lab machine: {result.stderr.strip()[:200]}",
                        hint="partitioning a real lab needs root and iptables there",
                    )

    def heal(self) -> None:
        for rule in self._rules():
            while self._iptables("-C", rule).rc == 0:
                self._iptables("-D", rule)

    def is_partitioned(self) -> bool:
        return any(self._iptables("-C", rule).rc == 0 for rule in self._rules())


class SystemdControl:
    def __init__(self, host_spec: str, host: Any = None) -> None:
        if host is None:
            import testinfra

            host = testinfra.get_host(host_spec)
        self.host = host

    def members(self, component: str) -> list[MemberControl]:
        found: list[MemberControl] = [
            SystemdMember(self.host, c, name, unit) for (c, name), unit in UNITS.items() if c == component
        ]
        if not found:
            raise WorkshopError(
                f"a systemd-controlled lab has no {component!r} members to break",
                hint="whole-machine faults (node) need the embedded lab",
            )
        return found

    def member(self, component: str, name: str) -> MemberControl:
        for m in self.members(component):
            if m.name == name:
                return m
        raise WorkshopError(f"no {component} member {name!r} on a systemd lab", hint="see faults/systemd.py UNITS")
