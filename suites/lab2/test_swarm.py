"""Lab 2: Docker Swarm — architecture (nodes, managers, raft) and usage (services, overlays, discovery)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from itertools import pairwise

import pytest
from docker.types import (
    ConfigReference,
    EndpointSpec,
    RestartPolicy,
    RollbackConfig,
    SecretReference,
    ServiceMode,
    UpdateConfig,
)

from pytest_workshop.api import experiment, wait_until

pytestmark = pytest.mark.workshop_lab("lab2", "Lab 2: Docker Swarm", requires=["swarm"])

IPV4 = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b")
SLEEP = ["sleep", "3600"]


@pytest.fixture(scope="module")
def probe(swarm_services_module, swarm_test_image):
    """A global service on an overlay, one task per node: the vantage points of the network checks.

    dnsrr, not the default VIP endpoint: VIP needs the kernel's ip_vs (see LAB2-17).
    """
    net = swarm_services_module.overlay()
    service = swarm_services_module.create(
        swarm_test_image, SLEEP, mode="global", networks=[net.name], endpoint_spec=EndpointSpec(mode="dnsrr")
    )
    tasks = service.wait_converged()
    return service, net, tasks


def fetch(service, task, url: str) -> tuple[int, str]:
    """GET ``url`` from the task's container, 30 tries over about 6 s."""
    loop = f"for i in $(seq 30); do timeout 2 wget -q -O - {url} && exit 0; sleep 0.2; done; exit 1"
    return service.exec_on(task, loop)


@pytest.mark.check(
    "LAB2-01",
    "Swarm mode is active on every configured node",
    step="2.1",
    component="swarm",
    hint="no swarm yet: `docker swarm init` on the first manager; then on each node that is not active: `docker swarm join --token <token> <manager>:2377` (tokens: `docker swarm join-token worker|manager`)",
)
def test_swarm_active_everywhere(swarm_node_clients):
    assert not swarm_node_clients.unreachable, "engines that do not answer: " + "; ".join(
        f"{h}: {why}" for h, why in swarm_node_clients.unreachable.items()
    )
    states = {name: c.info()["Swarm"]["LocalNodeState"] for name, c in swarm_node_clients.items()}
    inactive = [f"{n} is {s}" for n, s in states.items() if s != "active"]
    assert not inactive, "swarm mode not active: " + ", ".join(inactive)


@pytest.mark.check(
    "LAB2-02",
    "The swarm has the workshop's number of nodes (3, or as lab.toml says)",
    step="2.1",
    component="swarm",
    hint="join the missing nodes, or remove stale ones with `docker node rm` (compare `docker node ls`)",
)
def test_node_count(lab, swarm):
    names = [n.hostname for n in swarm.nodes]
    expected = lab.swarm.expected_nodes
    assert len(names) == expected, (
        f"expected {expected} nodes ({lab.swarm.count_source('nodes')}), the swarm has {len(names)}: {', '.join(names)}"
    )


@pytest.mark.check(
    "LAB2-03",
    "Every node is Ready and Active",
    step="2.1",
    component="swarm",
    hint="a Down node: start its engine or fix its network; a drained one: `docker node update --availability active NODE`",
)
def test_nodes_ready_and_active(swarm):
    bad = [f"{n.hostname} is {n.state}/{n.availability}" for n in swarm.nodes if n not in swarm.schedulable]
    assert not bad, "; ".join(bad)


@pytest.mark.check(
    "LAB2-04",
    "The swarm has the workshop's number of managers (3, or as lab.toml says), an odd count",
    step="2.1",
    component="swarm",
    hint="promote or demote nodes (`docker node promote|demote`): 3 or 5 managers survive 1 or 2 failures",
)
def test_manager_count(lab, swarm, record_property):
    managers = [n.hostname for n in swarm.managers]
    record_property("note", f"{len(managers)} managers: the swarm survives losing {swarm.fault_tolerance}")
    expected = lab.swarm.expected_managers
    assert len(managers) == expected, (
        f"expected {expected} managers ({lab.swarm.count_source('managers')}), found {len(managers)}: {', '.join(managers)}"
    )
    assert len(managers) % 2 == 1, f"{len(managers)} managers: an even count tolerates no more failures than one fewer"


@pytest.mark.check(
    "LAB2-05",
    "Exactly one leader, and every manager agrees on it",
    step="2.1",
    component="swarm",
    hint="no leader means more than half the managers are down: start them (see LAB2-06)",
)
def test_one_leader_agreed(swarm, swarm_seen_from):
    assert swarm.leader is not None, "no single leader: " + ", ".join(
        f"{n.hostname}={n.leader}" for n in swarm.managers
    )
    seen = {}
    for node in swarm.managers:
        view = swarm_seen_from(node.hostname)
        if view is None:
            continue  # an unreachable manager engine is LAB2-06's finding
        seen[node.hostname] = view.leader.hostname if view.leader else None
    disagree = {m: lead for m, lead in seen.items() if lead != swarm.leader.hostname}
    assert not disagree, f"leader is {swarm.leader.hostname}, but " + ", ".join(
        f"{m} says {lead}" for m, lead in disagree.items()
    )


@pytest.mark.check(
    "LAB2-06",
    "Every manager is reachable",
    step="2.1",
    component="swarm",
    hint="an unreachable manager is down or cut off: start its engine or fix its network; it counts against quorum",
)
def test_managers_reachable(swarm, swarm_node_clients):
    bad = [f"{n.hostname} is {n.reachability or 'unknown'}" for n in swarm.managers if n.reachability != "reachable"]
    # The leader marks a manager unreachable only once its raft messages fail, a second or more
    # after the engine died: an engine that does not answer us now is evidence enough.
    answering, silent = swarm_node_clients.ask_each()
    unseen = [n.hostname for n in swarm.managers if n.reachability == "reachable" and n.id not in answering]
    if silent and unseen:
        bad.append(
            f"{', '.join(unseen)} still reachable to the leader, but the engine at {', '.join(silent)} does not "
            "answer (the leader notices within seconds)"
        )
    assert not bad, "; ".join(bad)


@pytest.mark.check(
    "LAB2-07",
    "A replicated service converges and spreads over several nodes",
    step="2.2",
    component="swarm",
    hint="tasks that stay pending have no eligible node (image missing, node drained or down); read `docker service ps`",
)
def test_replicated_service_spreads(swarm_services, swarm_test_image, swarm):
    eligible = swarm.schedulable
    service = swarm_services.create(
        swarm_test_image, SLEEP, mode=ServiceMode("replicated", replicas=2 * max(1, len(eligible)))
    )
    tasks = service.wait_converged()
    used = {t.node for t in tasks}
    assert len(used) >= min(2, len(eligible)), f"all {len(tasks)} tasks run on {', '.join(used)}"


@pytest.mark.check(
    "LAB2-08",
    "Scaling a service up and down converges",
    step="2.2",
    component="swarm",
    hint="if scaling stalls, read the task errors in `docker service ps` (resources, image, constraints)",
)
def test_scale_up_and_down(swarm_services, swarm_test_image):
    service = swarm_services.create(swarm_test_image, SLEEP, mode=ServiceMode("replicated", replicas=1))
    service.wait_converged()
    assert len(service.scale(4)) == 4
    assert len(service.scale(1)) == 1


ROLLING_REPLICAS, ROLLING_DELAY_S = 2, 1.0
EXPERIMENT_BOUND_S = 90.0  # from the module's start; each wait inside has its own, tighter bound


@dataclass
class RollingUpdate:
    elapsed: float  # from the update request to UpdateStatus "completed"
    starts: list[float]  # creation times of the updated tasks, in order (s since the epoch)
    envs: list[tuple[str, ...]]  # the environment of each running container afterwards


@experiment(bound=EXPERIMENT_BOUND_S, requires="swarm")
def rolling_update(swarm_services_module, swarm_test_image) -> RollingUpdate:
    """A service of two tasks updated one at a time, a delay between (LAB2-09)."""
    service = swarm_services_module.create(
        swarm_test_image,
        SLEEP,
        mode=ServiceMode("replicated", replicas=ROLLING_REPLICAS),
        # a 1 s monitor window, not the default 5 s: what is proven (one at a time, a delay between) is the same
        update_config=UpdateConfig(
            parallelism=1, delay=int(ROLLING_DELAY_S * 1e9), order="stop-first", monitor=int(1e9)
        ),
    )
    service.wait_converged()
    started = time.monotonic()
    service.change(env=["WORKSHOP_VERSION=2"])
    service.wait("finish its rolling update", lambda: service.update_state() == "completed")
    elapsed = time.monotonic() - started
    tasks = service.wait_converged()
    starts = service.creation_times("WORKSHOP_VERSION=2")
    envs = [tuple(service.container_on(t).attrs["Config"]["Env"] or ()) for t in tasks]
    return RollingUpdate(elapsed, starts, envs)


@experiment(bound=EXPERIMENT_BOUND_S, requires="swarm")
def failed_update(swarm_services_module, swarm_test_image) -> set[tuple[str, ...]]:
    """A service updated to a command that fails, with failure action rollback (LAB2-10): the
    commands its tasks run afterwards."""
    service = swarm_services_module.create(
        swarm_test_image,
        SLEEP,
        mode=ServiceMode("replicated", replicas=2),
        update_config=UpdateConfig(parallelism=1, failure_action="rollback", monitor=int(1e9), max_failure_ratio=0),
        rollback_config=RollbackConfig(parallelism=0, monitor=int(1e9)),
        restart_policy=RestartPolicy(condition="none"),
    )
    service.wait_converged()
    service.obj.update(command=["sh", "-c", "exit 1"])
    service.wait("roll back its failing update", lambda: service.update_state() == "rollback_completed", timeout=60)
    tasks = service.wait_converged()
    # a service's command becomes the container's entrypoint (its args become Cmd)
    configs = [service.container_on(t).attrs["Config"] for t in tasks]
    return {tuple((c.get("Entrypoint") or []) + (c.get("Cmd") or [])) for c in configs}


@pytest.mark.check(
    "LAB2-09",
    "A rolling update respects parallelism and delay, and completes",
    step="2.3",
    component="swarm",
    hint="an update stuck in 'updating' has a task that will not start; `docker service inspect --pretty` shows UpdateStatus",
)
def test_rolling_update(rolling_update, record_property):
    update = rolling_update.result()
    record_property("note", f"{ROLLING_REPLICAS} tasks updated in {update.elapsed:.1f} s")
    # parallelism 1 with a delay between batches: each updated task is created at least one
    # delay after the one before it (the delay runs after the previous task is running)
    gaps = [later - earlier for earlier, later in pairwise(update.starts)]
    assert len(update.starts) == ROLLING_REPLICAS, f"{len(update.starts)} updated tasks, expected {ROLLING_REPLICAS}"
    assert all(gap >= ROLLING_DELAY_S * 0.9 for gap in gaps), (
        f"updated tasks started {', '.join(f'{g:.2f}' for g in gaps)} s apart: parallelism 1 with a "
        f"{ROLLING_DELAY_S:g} s delay allows no less than {ROLLING_DELAY_S:g} s"
    )
    assert all("WORKSHOP_VERSION=2" in env for env in update.envs), "some tasks still run the old spec"


@pytest.mark.check(
    "LAB2-10",
    "A failing update is rolled back",
    step="2.3",
    component="swarm",
    hint="set --update-failure-action rollback and a --update-monitor window; a paused update needs `docker service rollback`",
)
def test_failed_update_rolls_back(failed_update):
    commands = failed_update.result()
    assert commands == {tuple(SLEEP)}, f"after the rollback tasks run {commands}"


@pytest.mark.check(
    "LAB2-11",
    "A global service runs exactly one task per eligible node",
    step="2.2",
    component="swarm",
    hint="a node without a task is down, drained, or lacks the image",
)
def test_global_service(swarm_services, swarm_test_image, swarm):
    eligible = sorted(n.hostname for n in swarm.schedulable)
    service = swarm_services.create(swarm_test_image, SLEEP, mode="global")
    tasks = service.wait_converged()
    assert sorted(t.node for t in tasks) == eligible, (
        f"tasks on {sorted(t.node for t in tasks)}, eligible nodes {eligible}"
    )


@pytest.mark.check(
    "LAB2-12",
    "A drained node gets no tasks",
    step="2.4",
    component="swarm",
    timeout=240,  # it may first wait for lab5 on another worker (swarm_placement_exclusive)
    hint="`docker node update --availability drain NODE` moves tasks away; if they stay, the node is not seen as drained",
)
def test_drained_node_gets_no_tasks(
    swarm_services,
    swarm_test_image,
    swarm,
    set_node_availability,
    lab_change,
    swarm_placement_exclusive,
    rolling_update,
    failed_update,
):
    # Draining moves every task off the node: not while this module's experiments run, nor while
    # another module needs its tasks where they are (lab5's app, on another worker).
    rolling_update.wait()
    failed_update.wait()
    candidates = [n for n in swarm.nodes if not n.leader and n.state == "ready"] or swarm.nodes
    target = candidates[-1]
    # Journalled like a fault: a run killed here leaves the node drained for everyone otherwise.
    with swarm_placement_exclusive(), lab_change("swarm-node-drained", node=target.hostname):
        displaced = swarm_services.others_on(target.id)
        set_node_availability(target.hostname, "drain")
        service = swarm_services.create(swarm_test_image, SLEEP, mode="global")
        tasks = service.wait_converged()
        on_drained = [t for t in tasks if t.node == target.hostname]
        assert not on_drained, f"{target.hostname} is drained but runs {len(on_drained)} task(s)"
        # put the lab's own services (an attendee's stack) back over every node, as they were
        set_node_availability(target.hostname, "active")
        swarm_services.respread(displaced)


@pytest.mark.check(
    "LAB2-13",
    "An overlay network carries traffic between containers on different nodes",
    step="2.5",
    component="swarm",
    hint="overlays need the nodes to reach each other on UDP 4789 (VXLAN) and TCP/UDP 7946, and the vxlan kernel module",
)
def test_overlay_between_nodes(probe):
    service, net, tasks = probe
    if len({t.node for t in tasks}) < 2:
        pytest.skip("a single-node swarm has no second node to reach")
    src, dst = tasks[0], next(t for t in tasks if t.node != tasks[0].node)
    # a few tries: the overlay's forwarding entries for a new task arrive by gossip
    code, out = service.exec_on(
        src, f"for i in 1 2 3 4 5; do ping -c 1 -W 2 {dst.addresses[0]} && exit 0; done; exit 1"
    )
    assert code == 0, f"{src.node} cannot reach {dst.node} ({dst.addresses[0]}) over {net.name}: {out.strip()[-160:]}"


@pytest.mark.check(
    "LAB2-14",
    "DNS discovery: tasks.<service> and a dnsrr service name resolve to the tasks",
    step="2.5",
    component="swarm",
    hint="service names resolve only on user-defined overlays, from containers attached to them (embedded DNS 127.0.0.11)",
)
def test_service_discovery_dns(probe):
    service, _, tasks = probe
    expected = {t.addresses[0] for t in tasks if t.addresses}
    for name in (f"tasks.{service.name}", service.name):
        code, found = 1, set()

        def resolves(name: str = name) -> bool:
            nonlocal code, found
            code, out = service.exec_on(tasks[0], f"nslookup {name}")
            found = {ip for ip in IPV4.findall(out) if not ip.startswith("127.")}
            return code == 0 and found == expected

        # Records of tasks on other nodes reach this node's resolver by gossip: allow it 10 s.
        wait_until(resolves, 10, step=0.3)
        assert code == 0 and found == expected, (
            f"{name} resolved to {sorted(found)} after 10 s, the tasks are {sorted(expected)}"
        )


@pytest.mark.check(
    "LAB2-15",
    "A secret and a config reach the service's containers",
    step="2.6",
    component="swarm",
    hint="secrets appear under /run/secrets/<name>, configs at their target path; both need a manager to deliver them",
)
def test_secret_and_config(swarm_services, swarm_test_image):
    secret = swarm_services.secret(b"s3cr3t-value")
    config = swarm_services.config(b"listen=8080\n")
    service = swarm_services.create(
        swarm_test_image,
        ["sh", "-c", f"cat /run/secrets/{secret.name} /etc/workshop.conf && exec sleep 3600"],
        secrets=[SecretReference(secret.id, secret.name)],
        configs=[ConfigReference(config.id, config.name, filename="/etc/workshop.conf")],
    )
    (task,) = service.wait_converged(1)
    container = service.container_on(task)
    wait_until(container.logs, 5)
    assert container.logs() == b"s3cr3t-value" + b"listen=8080\n", "the container did not see the secret and the config"


@pytest.mark.check(
    "LAB2-16",
    "A port published in host mode answers on the node that runs the task",
    step="2.7",
    component="swarm",
    hint="host-mode ports bind on the task's node only; check that node's firewall and that the port is free there",
)
def test_host_mode_publish(swarm_services, swarm_test_image, swarm, probe):
    port = 30000 + int(time.time() * 1000) % 2000
    web = swarm_services.create(
        swarm_test_image,
        ["sh", "-c", "mkdir /www && echo host-mode > /www/index.html && exec httpd -f -p 8080 -h /www"],
        mode=ServiceMode("replicated", replicas=1),
        endpoint_spec=EndpointSpec(mode="dnsrr", ports={port: (8080, "tcp", "host")}),
    )
    (task,) = web.wait_converged(1)
    addr = next(n.addr for n in swarm.nodes if n.hostname == task.node)
    service, _, probes = probe
    source = next((t for t in probes if t.node != task.node), probes[0])
    code, out = fetch(service, source, f"http://{addr}:{port}/")
    assert code == 0 and "host-mode" in out, (
        f"{task.node} ({addr}:{port}) did not answer from {source.node}: {out.strip()[-160:]}"
    )


@pytest.mark.check(
    "LAB2-17",
    "The routing mesh and VIP load balancing work",
    step="2.7",
    component="swarm",
    hint="the routing mesh needs the kernel's ip_vs module (modprobe ip_vs); if this lab does without it, set routing_mesh = false in [swarm]",
)
def test_routing_mesh(lab, kernel_features, swarm_services, swarm_test_image, swarm, probe):
    if not lab.swarm.routing_mesh:
        pytest.skip(f"this lab declares routing_mesh = false ({lab.source}): services use dnsrr and host-mode ports")

    features = kernel_features
    assert features.present["ip_vs"], (
        f"kernel {features.release} has no ip_vs ({features.how['ip_vs']}): the routing mesh and VIPs cannot work"
    )
    port = 32000 + int(time.time() * 1000) % 700
    web = swarm_services.create(
        swarm_test_image,
        ["sh", "-c", "mkdir /www && echo mesh > /www/index.html && exec httpd -f -p 8080 -h /www"],
        mode=ServiceMode("replicated", replicas=1),
        endpoint_spec=EndpointSpec(ports={port: 8080}),
    )
    (task,) = web.wait_converged(1)
    service, _, probes = probe
    other = next((n for n in swarm.nodes if n.hostname != task.node), None)
    target = other.addr if other else swarm.nodes[0].addr
    code, out = fetch(service, probes[0], f"http://{target}:{port}/")
    assert code == 0 and "mesh" in out, (
        f"the published port {port} did not answer through the mesh on {target}: {out.strip()[-160:]}"
    )
