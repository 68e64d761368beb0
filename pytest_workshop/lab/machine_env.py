"""``/etc/workshop/lab.env`` on every lab machine: the one place the guides read what differs
from one lab to the next (this machine's name and address, the other machines', etcd's cluster
string, where the workshop's files are). An organizer writes it on each attendee VM; the embedded
lab writes it into each machine's own ``/etc/workshop`` (nodes.NODE_BINDS).

The guides load it once per shell: ``set -a; . /etc/workshop/lab.env; set +a``.
"""

from __future__ import annotations

from pathlib import Path

from pytest_workshop.lab import etcd_cluster, nodes

ENV_FILE = "/etc/workshop/lab.env"
# the machine's own /etc/workshop, as the node's mount namespace binds it
ENV_DIR_IN_STATE = "etc-workshop"


def lab_env(
    spec: nodes.NodeSpec,
    machines: list[nodes.NodeSpec],
    members: list[etcd_cluster.MemberSpec],
    files: Path,
    test_image: str,
    extra: dict[str, str] | None = None,
) -> str:
    """The file's text for machine ``spec`` of a lab of ``machines`` (the Swarm nodes); ``extra``:
    what only this machine needs (the DevStack machine's openstack CLI and clouds.yaml)."""
    peers = ",".join(f"{m.name}=http://{m.address}:{etcd_cluster.PEER_PORT}" for m in members)
    clients = ",".join(f"http://{m.address}:{etcd_cluster.CLIENT_PORT}" for m in members)
    own = next((m for m in members if m.node == spec.name), None)
    # no ETCD_* names: etcd reads those as its flags, and refuses to start when a flag repeats one
    lines = [
        "# This lab's names and addresses, for the workshop's guides (suites/lab*/README.md).",
        f"NODE_NAME={spec.name}",
        f"NODE_IP={spec.address}",
        *(f"{m.name.upper()}_IP={m.address}" for m in machines),
        f"NODES={' '.join(m.name for m in machines)}",
        f"MANAGER_IP={machines[0].address}",
        f"MEMBER_NAME={own.name if own else ''}",
        f"CLUSTER_PEERS={peers}",
        f"CLUSTER_ENDPOINTS={clients}",
        "ETCDCTL_API=3",
        f"ETCDCTL_ENDPOINTS={clients}",
        f"WORKSHOP_FILES={files}",
        f"TEST_IMAGE={test_image}",
        # the embedded lab's engines listen on a socket of their own, not /var/run/docker.sock
        f"DOCKER_HOST={spec.host}",
        *(f"{k}={v}" for k, v in (extra or {}).items()),
    ]
    # double quotes: a value may hold spaces (NODES), and PATH extends the machine's own ("$PATH")
    return "\n".join(line if line.startswith("#") else '{}="{}"'.format(*line.split("=", 1)) for line in lines) + "\n"


def write(
    specs: list[nodes.NodeSpec],
    machines: list[nodes.NodeSpec],
    members: list[etcd_cluster.MemberSpec],
    files: Path,
    test_image: str,
    extra: dict[str, str] | None = None,
) -> None:
    """lab.env on each machine of ``specs``, in a lab whose Swarm nodes are ``machines``."""
    for spec in specs:
        path = Path(spec.dir, ENV_DIR_IN_STATE, "lab.env")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(lab_env(spec, machines, members, files, test_image, extra))
