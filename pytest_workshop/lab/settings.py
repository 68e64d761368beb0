"""What `workshop lab up` is asked for (LabSettings, checked before anything starts) and what it
needs installed."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_workshop.errors import LabError

# binary -> Debian package that provides it
REQUIRED = {
    "/usr/sbin/dockerd": "docker.io",
    "/usr/bin/containerd": "containerd (comes with docker.io)",
    "/usr/sbin/runc": "runc (comes with docker.io)",
    "/usr/bin/docker-init": "tini (comes with docker.io)",
    "/usr/bin/etcd": "etcd-server",
    "/bin/busybox": "busybox-static",
    "/usr/sbin/iptables": "iptables",
    "/usr/bin/nsenter": "util-linux",
    "/usr/bin/unshare": "util-linux",
}


@dataclass(frozen=True)
class LabSettings:
    name: str = "embedded"
    nodes: int = 3
    managers: int = 3
    etcd_members: int = 3
    etcd_port_base: int = 23790  # member i is reachable from the host on 127.0.0.1:<base + i>
    # small on purpose: the etcd-out-of-space exercise fills it in seconds (etcd's default is 2 GiB)
    etcd_quota_bytes: int | None = 64 * 1024 * 1024
    prefix: str = "wsl"  # names of the lab's network namespaces and cgroups
    segment: str = "10.251.0.0/24"  # the lab network (inside the lab's namespaces only)
    swarm_pool: str = "10.252.0.0/16"  # Swarm's default address pool for overlay networks
    test_image: str = "pytest-workshop/busybox:1.36"  # components.docker.OWN_TEST_IMAGE
    # `--with openstack`: the DevStack machine (Keystone, Neutron/OVN, kuryr) with its own engine
    openstack: bool = False
    keystone_port: int = 5000  # on 127.0.0.1 of the host and of the DevStack machine alike
    neutron_port: int = 9696
    # The first machine's engine also listens with TLS (client certificates required) and is reached
    # on 127.0.0.1:<port>; lab.toml then names it that way (tcp://, tls_verify, cert_path), as an
    # attendee VM's engine is reached. None: the engine's unix socket, as usual.
    docker_tls_port: int | None = None
    # The first machine also runs an SSH server (lab/ssh.py), reached on 127.0.0.1:<port>; lab.toml
    # then names the machine and its engine by ssh:// (the ssh home under <state>/ssh/home).
    ssh_port: int | None = None
    # etcd serves clients over TLS and requires client certificates (etcdctl's --cacert/--cert/--key);
    # lab.toml names the files. The reference app (lab5) does not speak TLS: such a lab has no [app].
    etcd_tls: bool = False
    # The workshop's starting state (`lab up --bare`): engines running but in no Swarm, etcd
    # installed on every machine but no cluster, the guide's images present; the attendee does the rest.
    bare: bool = False

    @property
    def tls(self) -> bool:
        """Whether the lab needs certificates (lab/certs.py)."""
        return bool(self.docker_tls_port) or self.etcd_tls

    def validate(self) -> None:
        if not 1 <= self.nodes <= 9:
            raise LabError(f"--nodes {self.nodes}: the lab runs 1 to 9 nodes", hint="use --nodes 3 or 5")
        if not 1 <= self.managers <= self.nodes:
            raise LabError(
                f"--managers {self.managers} with {self.nodes} nodes",
                hint="managers must be between 1 and the node count",
            )
        if not 1 <= self.etcd_members <= self.nodes:
            raise LabError(
                f"--etcd-members {self.etcd_members} with {self.nodes} nodes",
                hint="member i runs on node i: at most one per node",
            )
        if self.etcd_quota_bytes is not None and self.etcd_quota_bytes < 16 << 20:
            raise LabError(
                f"--etcd-quota-mib {self.etcd_quota_bytes >> 20}: etcd needs room for the lab's own keys",
                hint="use 16 MiB or more (default 64)",
            )
        if not self.prefix.isalnum() or len(self.prefix) > 8:
            raise LabError(f"--prefix {self.prefix!r}", hint="use up to 8 letters or digits")


def has_ip_vs() -> bool:
    from pytest_workshop.components.kernel import detect_local

    return detect_local().present["ip_vs"]
