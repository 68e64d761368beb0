"""Figures behind the [timeouts] defaults: how long each kind of operation takes on the
embedded lab, idle and busy. Prints p50 / p95 / max per kind, and the default chosen from them.

Kinds, as [timeouts] names them:
  connect          open a TCP connection (etcd, Keystone)
  request          one API call that reads or writes state (Docker info, etcd get/put, Neutron list)
  container_start  create + start a container (plain, and on a kuryr network: Docker -> kuryr -> Neutron -> OVN)
  network_create   create a Docker network (overlay; kuryr: + Neutron network, subnet pool, subnet)
  converge         a 3-replica Swarm service from create to every task running

"Busy" is the machine while the full conformance runs at -n 8 next to the bench (`--busy`): the
load instructors put on a lab when they check it in parallel.

Run as root from the repository, against a running embedded lab with OpenStack:
    .venv/bin/python bench/bench_bounds.py [--lab-config lab.toml] [--samples 8] [--busy]
Everything it creates carries a run label and is removed at the end.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    from docker.types import ServiceMode

    from pytest_workshop.components import docker, openstack
    from pytest_workshop.components.etcd import EtcdClient
    from pytest_workshop.components.kuryr import KuryrNetworkFactory
    from pytest_workshop.components.swarm_services import ServiceFactory
    from pytest_workshop.config import Timeouts, load_file
    from pytest_workshop.run import Run, new_run_id

    parser = argparse.ArgumentParser()
    parser.add_argument("--lab-config", type=Path, default=REPO / "lab.toml")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--busy", action="store_true", help="sample while the conformance runs at -n 8")
    args = parser.parse_args()
    lab = load_file(args.lab_config)
    assert lab.docker and lab.swarm and lab.etcd and lab.openstack and lab.kuryr
    # Generous bounds: the bench measures how long things take, it must not cut them short.
    generous = Timeouts(connect=60, request=60, container_start=120, network_create=120, converge=120)
    run = Run(new_run_id())
    run.register()
    client = docker.connect(lab.docker, generous)
    nodes = docker.connect_each(lab.docker, lab.swarm.hosts, generous)
    kuryr_client = docker.connect(replace(lab.docker, host=lab.kuryr.docker_host or lab.docker.host), generous)
    admin = openstack.connect(lab.openstack, generous, admin=True)
    etcd = EtcdClient(lab.etcd, generous)
    services = ServiceFactory(client, dict(nodes.clients), run.labels, run.name_prefix, 120)
    kuryr = KuryrNetworkFactory(
        kuryr_client,
        admin,
        run.labels,
        run.name_prefix,
        run.run_id,
        lab.docker.test_image or docker.OWN_TEST_IMAGE,
        lab.kuryr.network_driver,
        lab.kuryr.ipam_driver,
        generous,
    )
    image = lab.docker.test_image or docker.OWN_TEST_IMAGE
    etcd_host = urlsplit(lab.etcd.endpoints[0])
    keystone = urlsplit(lab.openstack.auth_url)
    knet = kuryr.create()

    samples: dict[str, list[float]] = defaultdict(list)

    def timed(kind: str, what: str, fn: Callable[[], object]) -> None:
        t0 = time.monotonic()
        fn()
        samples[f"{kind:15s} {what}"].append(time.monotonic() - t0)

    def one_round(i: int) -> None:
        timed("connect", "etcd tcp", lambda: socket.create_connection((etcd_host.hostname, etcd_host.port), 60).close())
        timed(
            "connect", "keystone tcp", lambda: socket.create_connection((keystone.hostname, keystone.port), 60).close()
        )
        timed("request", "docker info", client.info)
        timed("request", "docker containers.list", client.containers.list)
        timed("request", "etcd put", lambda: etcd.put(f"{run.etcd_prefix}bench/{i}".encode(), b"x"))
        timed("request", "etcd get", lambda: etcd.get(f"{run.etcd_prefix}bench/{i}".encode()))
        timed("request", "neutron ports list", lambda: list(admin.network.ports(limit=50)))
        made = []
        timed(
            "request",
            "neutron network create",
            lambda: made.append(admin.network.create_network(name=f"{run.name_prefix}bench-{i}")),
        )
        timed("request", "neutron network delete", lambda: admin.network.delete_network(made[0]))
        timed(
            "container_start",
            "plain (bridge)",
            lambda: client.containers.run(
                image, ["sleep", "60"], detach=True, labels=run.labels, name=f"{run.name_prefix}bench-{i}", init=True
            ),
        )
        timed("container_start", "on kuryr", lambda: kuryr.run(knet))
        timed("network_create", "overlay", services.overlay)
        timed("network_create", "kuryr", kuryr.create)
        service = services.create(image, ["sleep", "3600"], mode=ServiceMode("replicated", replicas=3))
        t0 = time.monotonic()
        service.wait_converged()
        samples[f"{'converge':15s} 3 replicas"].append(time.monotonic() - t0)

    load = None
    if args.busy:
        load = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--no-allure",
                "--lab-config",
                str(args.lab_config),
                "suites",
                "-n",
                "8",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(5)  # past collection, into the checks
    try:
        for i in range(args.samples):
            one_round(i)
            if load is not None and load.poll() is not None:
                print(f"(the load finished after {i + 1} rounds)")
                break
    finally:
        if load is not None:
            load.wait(timeout=900)
        for c in client.containers.list(all=True, filters={"label": f"{next(iter(run.labels))}={run.run_id}"}):
            c.remove(force=True)
        problems = services.cleanup() + kuryr.cleanup()
        etcd.delete_prefix(run.etcd_prefix.encode())
        etcd.close()
        run.unregister()
    print(f"{'busy' if args.busy else 'idle'} machine, {len(next(iter(samples.values())))} samples each")
    print(f"{'kind':15s} {'operation':24s} {'p50':>6s} {'p95':>6s} {'max':>6s}  (seconds)")
    for name, values in samples.items():
        values.sort()
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        print(f"{name:40s} {statistics.median(values):6.2f} {p95:6.2f} {values[-1]:6.2f}")
    print(f"defaults now: {Timeouts()}")
    if problems:
        print("left behind:", problems)


if __name__ == "__main__":
    main()
