"""What runs of the suites left on the lab: every engine, etcd and Neutron."""

from __future__ import annotations

from pytest_workshop.components import docker as docker_component
from pytest_workshop.components import etcd as etcd_component
from pytest_workshop.components import openstack as openstack_component
from pytest_workshop.run import ETCD_ROOT, LABEL_RUN


def left_by(cfg, run_id: str | None = None) -> list[str]:
    """What the run ``run_id`` (None: any run) still has on every engine of the lab, in etcd and in Neutron."""
    found = []
    label = {"label": f"{LABEL_RUN}={run_id}" if run_id else LABEL_RUN}
    hosts = {*cfg.swarm_hosts, *([cfg.kuryr.docker_host] if cfg.kuryr and cfg.kuryr.docker_host else [])}
    for host in sorted(hosts):
        from dataclasses import replace

        client = docker_component.connect(replace(cfg.docker, host=host), cfg.timeouts)
        try:
            found += [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
            found += [f"network {n.name}" for n in client.networks.list(filters=label)]
            found += [f"image {i.tags or i.short_id}" for i in client.images.list(filters=label)]
            if host == cfg.docker.host:
                found += [f"service {s.name}" for s in client.services.list(filters=label)]
        finally:
            client.close()
    etcd = etcd_component.connect(cfg.etcd, cfg.timeouts)
    try:
        found += [
            f"etcd {kv.key.decode()}"
            for kv in etcd.get_prefix(f"{ETCD_ROOT}{run_id}/".encode() if run_id else ETCD_ROOT.encode())
        ]
    finally:
        etcd.close()
    conn = openstack_component.connect(cfg.openstack, cfg.timeouts, admin=True)
    try:
        found += [
            f"neutron network {n.name}"
            for n in conn.network.networks()
            if any(t.startswith(f"{openstack_component.RUN_TAG}{run_id or ''}") for t in n.tags or [])
        ]
    finally:
        conn.close()
    return found
