"""Figures for lab5: the app image's offline build, the reference app's own timings
(registration after start, expiry after a kill, configuration propagation), its memory, and the
wall time of `pytest suites/lab5` (median of N runs, deploy included).

Run as root from the repository, against a running embedded lab:
    .venv/bin/python bench/bench_lab5.py [--lab-config lab.toml] [--runs 3]
Deploys the reference app under a stack of its own (labelled, removed at the end) and rebuilds
the image on the last node once (it removes it there first).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def suite_seconds(config: Path) -> tuple[float, str]:
    t0 = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--no-allure",
            "--lab-config",
            str(config),
            "suites/lab5",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return time.monotonic() - t0, result.stdout.strip().splitlines()[-1]


def main() -> None:
    from pytest_workshop.components import docker, etcd, microservices
    from pytest_workshop.components.swarm_services import ServiceFactory
    from pytest_workshop.config import load_file
    from pytest_workshop.plugin.fixtures_app import deploy_reference

    parser = argparse.ArgumentParser()
    parser.add_argument("--lab-config", type=Path, default=REPO / "lab.toml")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lab = load_file(args.lab_config)
    assert lab.docker and lab.swarm and lab.etcd
    hosts = lab.swarm.hosts or (lab.docker.host,)
    engines = docker.connect_each(lab.docker, hosts, lab.timeouts)
    last = docker.connect(replace(lab.docker, host=hosts[-1]), lab.timeouts)
    if docker.image_exists(last, microservices.APP_IMAGE):
        last.images.remove(microservices.APP_IMAGE, force=True)
    t0 = time.monotonic()
    context = microservices.app_image_context()
    context_s = time.monotonic() - t0
    print(
        f"image: build context {len(context) >> 20} MiB in {context_s:.2f} s; "
        f"{microservices.ensure_app_image(last)} on {hosts[-1]}; "
        f"size {last.images.get(microservices.APP_IMAGE).attrs['Size'] >> 20} MiB"
    )
    for client in engines.clients.values():
        microservices.ensure_app_image(client)

    client = docker.connect(lab.docker, lab.timeouts)
    factory = ServiceFactory(client, dict(engines.clients), {"pytest-workshop.run": "bench-lab5"}, "pw-bench-", 60)
    store = etcd.connect(lab.etcd, lab.timeouts)
    try:
        t0 = time.monotonic()
        app = deploy_reference(lab, factory, microservices.APP_IMAGE)
        converged = time.monotonic() - t0
        while set(app.registrations(store)) != set(app.instances()):
            time.sleep(0.05)
        print(f"deploy: converged {converged:.2f} s, every instance registered {time.monotonic() - t0:.2f} s")
        # registration after start: scale up by one and time the new key
        before = set(app.registrations(store))
        t0 = time.monotonic()
        app.backend.scale(len(before) + 1, wait=False)
        while not set(app.registrations(store)) - before:
            time.sleep(0.05)
        print(f"scale-up: new instance registered {time.monotonic() - t0:.2f} s after the scale request")
        app.backend.wait_converged()
        # expiry after a hard kill
        name, task = sorted(app.instances().items())[0]
        app.backend.container_on(task).kill()
        t0 = time.monotonic()
        while name in app.registrations(store):
            time.sleep(0.05)
        print(f"kill: registration gone {time.monotonic() - t0:.2f} s after the kill (TTL 3 s)")
        # configuration propagation
        key = f"{lab.app.config_prefix}{app.stack}/greeting".encode()
        store.put(key, b"bench")
        t0 = time.monotonic()
        registered = set(app.registrations(store))
        seen: dict[str, str] = {}
        while not all(seen.get(i) == "bench" for i in registered):
            for a in app.ask_frontend(times=2 * len(registered)):
                if "answered_by" in a:
                    seen[a["answered_by"]] = a.get("greeting")
        print(
            f"config: every instance answers with the new greeting {time.monotonic() - t0:.2f} s after the put "
            "(includes the requests that prove it)"
        )
        store.delete(key)
        # memory of the deployed app
        total = 0
        for node_client in engines.clients.values():
            for c in node_client.containers.list(filters={"label": f"{microservices.STACK_LABEL}={app.stack}"}):
                total += c.stats(stream=False)["memory_stats"].get("usage", 0)
        print(f"memory: the app's {len(app.backend.running()) + 1} containers use {total / 2**20:.1f} MiB")
    finally:
        factory.cleanup()
        store.close()
    times, lines = [], []
    for _ in range(args.runs):
        seconds, line = suite_seconds(args.lab_config)
        times.append(seconds)
        lines.append(line)
    print(f"pytest suites/lab5: median {statistics.median(times):.1f} s of {[round(t, 1) for t in times]}; {lines[-1]}")


if __name__ == "__main__":
    main()
