"""Lab 5: deploying microservices — services on Swarm that register in etcd and find each other there.

The deployment checked is the attendee's stack ([app] mode = "attendee", the default) or the
reference app the suite deploys itself ([app] mode = "reference", the embedded lab). The
observations (LAB5-01..09, 15) look at it as it is; the experiments (LAB5-10..14) change it the
way the lab step does (scale, kill, update, reconfigure) and put it back.
"""

from __future__ import annotations

import time

import pytest

from pytest_workshop import WorkshopError, in_background, wait_until

pytestmark = pytest.mark.workshop_lab("lab5", "Lab 5: Deploying microservices", requires=["swarm", "etcd"])

# Bounds, from the reference app on the embedded lab (2 cores): a started instance registers in
# 0.3-1 s, a graceful stop deregisters before its task is gone, etcd expires a lease on a 500 ms
# sweep. Each bound is several times what was measured; what a check proves does not change.
REGISTER_WITHIN_S = 10.0  # a running instance is registered (and its frontend knows it)
DEREGISTER_WITHIN_S = 2.0  # a gracefully stopped instance is gone from the registry
EXPIRY_SLACK_S = 3.0  # past the lease's TTL, for a killed instance's registration
CONFIG_WITHIN_S = 3.0  # a configuration change reaches every instance
DNS_GOSSIP_S = 10.0  # Swarm's DNS learns other nodes' tasks by gossip (lab2, LAB2-14)
KURYR_EXPERIMENT_BOUND_S = 120.0  # from the module's start: the kuryr deployment, then LAB5-16, 17 and its removal
# From the module's start, reference mode's second deployment: deployed (3-4 s, 15 s busy), rolling
# update (6 s, 20 s busy), kill (4 s): each bound several times the busy figure.
TWIN_DEPLOY_BOUND_S = 60.0
TWIN_UPDATE_BOUND_S = 120.0
TWIN_KILL_BOUND_S = 150.0
TWIN_BACKENDS = 2  # enough for both: one instance updated or killed while the other serves


@pytest.fixture(scope="module", autouse=True)
def experiments_in_background(start_early):
    """Begin now what mostly waits: the kuryr deployment (LAB5-16, 17), which waits seconds on
    kuryr, Neutron and OVN, with LAB5-16's and 17's experiments on it as soon as it is up; and, in reference
    mode, the second Swarm deployment with the rolling update and the kill (swarm_experiments)."""
    start_early("app_on_kuryr_started", component="kuryr")
    start_early("kuryr_experiments", component="kuryr")
    start_early("swarm_experiments", component="swarm")


def registry_matches_running(app, etcd) -> tuple[bool, dict, dict]:
    running, registered = app.instances(), app.registrations(etcd)
    return set(running) == set(registered), running, registered


def settle(app, etcd, replicas: int | None = None) -> None:
    """The steady state every experiment starts and ends in: the backend converged, and the
    registry lists exactly its running instances."""
    app.backend.wait_converged(replicas)
    settled = wait_until(lambda: registry_matches_running(app, etcd)[0], REGISTER_WITHIN_S, step=0.3)
    _, running, registered = registry_matches_running(app, etcd)
    if not settled:
        unregistered, stale = sorted(set(running) - set(registered)), sorted(set(registered) - set(running))
        raise WorkshopError(
            f"the registry does not match the running backends after {REGISTER_WITHIN_S:g} s: "
            f"running but not registered {unregistered or 'none'}, registered but not running {stale or 'none'}",
            hint="running but not registered: the instances cannot reach etcd (ETCD_ENDPOINTS, a firewall; "
            "`docker service logs` shows their etcd errors); registered but not running: see LAB5-06",
        )


class Traffic:
    """Requests through the frontend, 20 a second without a gap, while the block runs (one exec
    in the frontend's container: RequestStream); every answer is kept."""

    def __init__(self, app) -> None:
        self.app = app
        self.stream = None

    def __enter__(self) -> Traffic:
        self.stream = self.app.stream_requests()
        wait_until(lambda: self.stream.answers, 5, step=0.05)  # flowing before the change
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.stop()

    @property
    def answers(self) -> list[dict]:
        return self.stream.answers if self.stream else []

    @property
    def failed(self) -> list[dict]:
        return [a for a in self.answers if "answered_by" not in a]


def answered_by(answers: list[dict]) -> set[str]:
    return {a["answered_by"] for a in answers if "answered_by" in a}


# --- the deployment as it is -------------------------------------------------------------------------


@pytest.mark.check(
    "LAB5-01",
    "The app is deployed: its backend and frontend services exist on the Swarm",
    component="swarm",
    hint="deploy the stack: `ETCD_ENDPOINTS=... docker stack deploy -c fixtures/apps/registry-demo/stack.yml registry-demo` (suites/lab5/README.md)",
)
def test_app_deployed(app):
    assert not app.missing(), f"missing services: {', '.join(app.missing())}"


@pytest.mark.check(
    "LAB5-02",
    "Every replica is running, and the backends are spread over the nodes",
    component="swarm",
    hint="`docker stack ps registry-demo --no-trunc` says why a task does not run (image missing on a node? no eligible node?)",
)
def test_replicas_running_and_spread(app, swarm):
    for service in (app.backend, app.frontend):
        service.wait_converged(timeout=REGISTER_WITHIN_S)
    nodes = {t.node for t in app.backend.running()}
    ready = [n for n in swarm.nodes if n.state == "ready" and n.availability == "active"]
    want = min(len(app.backend.running()), len(ready))
    assert len(nodes) >= want, (
        f"{len(app.backend.running())} backends run on {len(nodes)} node(s) ({', '.join(sorted(nodes))}) "
        f"of {len(ready)} available: one node's failure takes more than its share"
    )


@pytest.mark.check(
    "LAB5-03",
    "Every running backend instance is registered in etcd",
    component="etcd",
    hint="an instance that runs but is not registered cannot reach etcd: check ETCD_ENDPOINTS in the stack (the nodes' addresses, not 127.0.0.1) and `docker service logs registry-demo_backend`",
)
def test_every_instance_registered(app, etcd):
    def all_registered() -> bool:
        return set(app.instances()) <= set(app.registrations(etcd))

    wait_until(all_registered, REGISTER_WITHIN_S, step=0.3)
    missing = sorted(set(app.instances()) - set(app.registrations(etcd)))
    assert not missing, (
        f"running but not registered under {app.prefix} after {REGISTER_WITHIN_S:g} s: {', '.join(missing)}"
    )


@pytest.mark.check(
    "LAB5-04",
    "Each registration carries the address and port its instance really has",
    component="etcd",
    hint="register the address of the container on the app's overlay network (not 127.0.0.1, not the node's) and the port the service listens on",
)
def test_registered_addresses_are_real(app, etcd):
    settle(app, etcd)
    running, registered = app.instances(), app.registrations(etcd)
    wrong = [
        f"{name} registered {r.address}, its task has {', '.join(running[name].addresses) or 'no address'}"
        for name, r in registered.items()
        if name in running and r.address not in running[name].addresses
    ]
    assert not wrong, "; ".join(wrong)
    answers = app.ask_frontend(times=3 * len(registered))
    assert answered_by(answers) >= set(registered), (
        f"registered instances that do not answer at their address:port: {sorted(set(registered) - answered_by(answers))}"
    )


@pytest.mark.check(
    "LAB5-05",
    "Every registration is attached to a lease with a bounded TTL",
    component="etcd",
    hint="put the registration with a lease (`etcdctl lease grant 5`, `put --lease=ID`) and keep it alive: a registration without one outlives a crashed instance",
)
def test_registrations_have_leases(app, etcd, lab):
    settle(app, etcd)
    problems = []
    for name, r in app.registrations(etcd).items():
        if not r.lease:
            problems.append(f"{name} has no lease")
            continue
        ttl = etcd.time_to_live(r.lease)
        if ttl > lab.app.max_ttl:
            problems.append(f"{name}'s lease has {ttl} s to live (more than {lab.app.max_ttl:g})")
        elif ttl <= 0:
            problems.append(f"{name}'s lease {r.lease:x} has expired")
    assert not problems, "; ".join(problems)


@pytest.mark.check(
    "LAB5-06",
    "No stale registration: every entry in the registry belongs to a running instance",
    component="etcd",
    hint="a stale entry outlived its instance: delete it (`etcdctl del KEY`), and register with a lease so the next one expires by itself",
)
def test_no_stale_registrations(app, etcd, lab, docker_client):
    registry = lab.app.registry_prefix

    def stale() -> dict[tuple[bytes, int], int]:
        """(key, create revision) -> lease of every entry whose instance is not running now."""
        services = {s.name: s for s in docker_client.services.list()}
        found = {}
        for kv in etcd.get_prefix(registry.encode()):
            service, _, instance = kv.key.decode()[len(registry) :].partition("/")
            live = services.get(service)
            # running: a container that still runs, whatever Swarm wants of it (one being stopped
            # by an update or a scale-down deregisters on its way out: not stale yet)
            running = {
                (t.get("Status", {}).get("ContainerStatus") or {}).get("ContainerID", "")[:12]
                for t in (live.tasks() if live else [])
                if t.get("Status", {}).get("State") == "running"
            }
            if instance not in running:
                found[(kv.key, kv.create_revision)] = kv.lease
        return found

    # An instance that just died (here, or in another run's experiment) keeps its entry until its
    # lease expires: each entry seen stale gets that long, no more. One without a lease never
    # expires: stale at once. Entries that turn up later are not this check's business.
    seen = stale()
    allowance = max((etcd.time_to_live(lease) for lease in seen.values() if lease), default=0)
    if any(seen.values()):
        wait_until(lambda: not (set(seen) & set(stale())), min(allowance, lab.app.max_ttl) + EXPIRY_SLACK_S, step=0.5)
    left = sorted(set(seen) & set(stale()))
    assert not left, "entries under {} with no running instance: {}".format(
        registry,
        ", ".join(
            f"{key.decode()} ({'lease ' + format(seen[(key, rev)], 'x') if seen[(key, rev)] else 'no lease'})"
            for key, rev in left
        ),
    )


@pytest.mark.check(
    "LAB5-07",
    "The frontend answers, and its requests reach every registered backend",
    component="swarm",
    hint="a backend the frontend cannot use: if it does not answer at all, see LAB5-15 and its logs; if only across nodes, the overlay is cut (VXLAN UDP 4789 and gossip TCP/UDP 7946 must pass between the nodes)",
)
def test_frontend_reaches_every_backend(app, etcd):
    settle(app, etcd)
    registered = set(app.registrations(etcd))
    answers = app.ask_frontend(times=3 * len(registered))
    failed = [a for a in answers if "answered_by" not in a]
    assert not failed, f"{len(failed)} of {len(answers)} requests failed: {failed[:2]}"
    slow = [a for a in answers if a.get("tried", 1) > 1]
    unreached = registered - answered_by(answers)
    assert not unreached and not slow, (
        f"registered backends the frontend could not use: {sorted(unreached) or 'none'}; "
        f"{len(slow)} of {len(answers)} requests had to skip a backend that did not answer"
    )


@pytest.mark.check(
    "LAB5-08",
    "The frontend's view of the backends is the registry's (discovery by watch works)",
    component="etcd",
    hint="the frontend must watch the registry prefix and apply every PUT and DELETE; `docker service logs registry-demo_frontend` shows whether it reaches etcd",
)
def test_frontend_view_is_the_registry(app, etcd):
    settle(app, etcd)
    seen: dict = {}

    def agree() -> bool:
        seen.update(app.frontend_view())
        return set(seen.get("backends", {})) == set(app.registrations(etcd))

    wait_until(agree, REGISTER_WITHIN_S, step=0.3)
    registered = set(app.registrations(etcd))
    assert set(seen.get("backends", {})) == registered, (
        f"the frontend knows {sorted(seen.get('backends', {}))}, the registry has {sorted(registered)} "
        f"(frontend's etcd: {seen.get('etcd')})"
    )


@pytest.mark.check(
    "LAB5-09",
    "Swarm's DNS (tasks.<backend>) and etcd's registry agree",
    component="swarm",
    hint="the two views of one service differ: an instance registered that Swarm does not run (stale), or one Swarm runs that did not register",
)
def test_dns_and_registry_agree(app, etcd):
    settle(app, etcd)
    registered = {r.address for r in app.registrations(etcd).values()}
    resolved: set[str] = set()

    def agree() -> bool:
        out = app.in_frontend(["sh", "-c", f"nslookup tasks.{app.backend_name} 2>/dev/null"])
        resolved.clear()
        # busybox nslookup: the answer's lines after "Name:" carry "Address: a.b.c.d" / "Address 1: a.b.c.d"
        for line in out.split("Name:", 1)[-1].splitlines():
            if line.startswith("Address"):
                resolved.add(line.split(":", 1)[1].split()[0])
        return resolved == registered

    wait_until(agree, DNS_GOSSIP_S, step=0.5)
    assert resolved == registered, (
        f"tasks.{app.backend_name} resolves to {sorted(resolved)}, the registry has {sorted(registered)}"
    )


@pytest.mark.check(
    "LAB5-15",
    "Every registered backend answers its health check (no registered instance is a zombie)",
    component="swarm",
    hint="a registered instance that does not answer: ask it from inside (`docker exec CONTAINER python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/health').read())\"`); silent there too: it is a zombie (its logs; only an instance that serves may keep its lease alive); answers there: the network between the nodes is cut (LAB5-07)",
)
def test_no_zombies(app, etcd):
    settle(app, etcd)
    silent = app.silent_backends(list(app.registrations(etcd).values()))
    assert not silent, f"registered but not answering /health within 2 s: {', '.join(silent)}"


# --- experiments: change the deployment the way the lab step does, then put it back --------------------


@pytest.mark.check(
    "LAB5-10",
    "Scaling up: new instances register and receive traffic within a bound",
    component="etcd",
    timeout=60,
    hint="new instances must register as they start; the frontend must pick them up from its watch without a restart",
)
def test_scale_up(app, etcd):
    settle(app, etcd)
    before = set(app.registrations(etcd))
    want = len(before) + 1
    t0 = time.monotonic()
    try:
        app.backend.scale(want)
        new: set[str] = set()

        def registered_and_serving() -> bool:
            new.clear()
            new.update(set(app.registrations(etcd)) - before)
            return bool(new) and bool(new & answered_by(app.ask_frontend(times=2 * want)))

        ok = wait_until(registered_and_serving, REGISTER_WITHIN_S, step=0.3)
        took = time.monotonic() - t0
        assert ok, (
            f"after scaling to {want}: new registrations {sorted(new) or 'none'}, none answering through the frontend within {REGISTER_WITHIN_S:g} s"
        )
        print(f"scale-up: registered and serving after {took:.1f} s")
    finally:
        # The extra instance stays: LAB5-11's scale-down is the way back, and proves itself on it
        # (one transition less to wait for). Attendee mode restores the replicas after the module.
        app.backend.wait_converged(want)


@pytest.mark.check(
    "LAB5-11",
    "Scaling down: stopped instances deregister at once, and no request fails",
    component="etcd",
    timeout=60,
    hint="on SIGTERM an instance must delete its registration (and revoke its lease) before it stops serving; with --init the signal reaches it",
)
def test_scale_down(app, etcd):
    settle(app, etcd)
    before = app.registrations(etcd)
    if len(before) < 2:
        app.backend.scale(2)  # one instance to stop, one to keep serving
        settle(app, etcd, 2)
        before = app.registrations(etcd)
    with Traffic(app) as traffic:
        app.backend.scale(len(before) - 1, wait=False)
        stopping = {}

        def stopped() -> bool:
            # the stopped instance: a task Swarm no longer wants, and its container has exited
            # (or the task is gone already: a scaled-down task is deleted once it stopped)
            tasks = {t.container_id[:12]: t for t in app.backend.tasks()}
            stopping.update({c: t for c, t in tasks.items() if t.desired != "running" and c in before})
            exited = [
                c for c, t in stopping.items() if c not in tasks or tasks[c].state in ("shutdown", "complete", "failed")
            ]
            return bool(stopping) and len(exited) == len(stopping)

        app.backend.wait("stop one instance", stopped)
        # the contract: deregistered before it stopped serving, so gone by the time it exited
        # (DEREGISTER_WITHIN_S for etcd's view to reach us)
        gone = wait_until(lambda: not (set(stopping) & set(app.registrations(etcd))), DEREGISTER_WITHIN_S, step=0.1)
    assert gone, (
        f"{sorted(set(stopping) & set(app.registrations(etcd)))} still registered after their containers exited"
    )
    assert not traffic.failed, (
        f"{len(traffic.failed)} of {len(traffic.answers)} requests failed while scaling down: {traffic.failed[:2]}"
    )


@pytest.mark.check(
    "LAB5-13",
    "A rolling update keeps the app answering, with no failed request",
    component="swarm",
    timeout=TWIN_UPDATE_BOUND_S,
    hint="update one instance at a time with start-first (`update_config: order: start-first`), and deregister on SIGTERM before stopping",
)
def test_rolling_update(swarm_experiments):
    print(swarm_experiments("LAB5-13"))


def rolling_update(app, etcd) -> str:
    """LAB5-13's experiment: a new VERSION rolled out under traffic."""
    settle(app, etcd)
    app.backend.reload()
    spec = app.backend.obj.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    env = [e for e in spec.get("Env", []) if not e.startswith("VERSION=")]
    version = f"u{int(time.time()) % 100000}"
    with Traffic(app) as traffic:
        app.backend.change(env=[*env, f"VERSION={version}"])
        app.backend.wait("finish its rolling update", lambda: app.backend.update_state() == "completed", 60)
        settle(app, etcd)
    assert not traffic.failed, (
        f"{len(traffic.failed)} of {len(traffic.answers)} requests failed during the update: {traffic.failed[:2]}"
    )
    latest = app.ask_frontend(times=6)
    assert {a.get("version") for a in latest} == {version}, (
        f"after the update the frontend got versions {sorted({str(a.get('version')) for a in latest})}, not only {version}"
    )
    return f"rolling update of {app.backend_name} to {version}: {len(traffic.answers)} requests, none failed"


@pytest.mark.check(
    "LAB5-14",
    "A configuration change written to etcd reaches every instance within a bound",
    component="etcd",
    hint="the services must watch their configuration key (<config prefix><stack>/greeting) and apply changes live, without a restart",
)
def test_config_change_reaches_everyone(app, etcd, lab):
    settle(app, etcd)
    key = f"{lab.app.config_prefix}{app.stack}/greeting".encode()
    greeting = f"hello-{int(time.time() * 1000) % 100000}"
    try:
        etcd.put(key, greeting.encode())
        registered = set(app.registrations(etcd))
        seen: dict[str, str] = {}

        def everyone() -> bool:
            for a in app.ask_frontend(times=2 * len(registered)):
                if "answered_by" in a:
                    seen[a["answered_by"]] = a.get("greeting")
            return all(seen.get(i) == greeting for i in registered)

        ok = wait_until(everyone, CONFIG_WITHIN_S, step=0.2)
        assert ok, f"after {CONFIG_WITHIN_S:g} s the instances answer {seen}, not {greeting!r} everywhere"
    finally:
        etcd.delete(key)


# LAB5-12 last of the Swarm experiments (in attendee mode, where they share the one deployment): the
# killed instance's replacement comes after Swarm's restart delay (5 s), and nothing after it needs
# the deployment settled.
@pytest.mark.check(
    "LAB5-12",
    "An instance killed hard vanishes from the registry within its TTL, and the frontend stops using it",
    component="etcd",
    timeout=TWIN_KILL_BOUND_S,
    hint="a killed instance cannot deregister: only its lease's expiry removes it, so keep the TTL short (seconds) and keep it alive from the instance",
)
def test_killed_instance_expires(swarm_experiments):
    print(swarm_experiments("LAB5-12"))


def killed_instance_expires(app, etcd, lab) -> str:
    """LAB5-12's experiment: one backend killed with SIGKILL (no deregistration)."""
    settle(app, etcd)
    registered = app.registrations(etcd)
    victim = sorted(app.instances().items())[0]
    name, task = victim
    ttl = etcd.time_to_live(registered[name].lease) if registered[name].lease else lab.app.max_ttl
    app.backend.container_on(task).kill()
    t0 = time.monotonic()
    gone = wait_until(lambda: name not in app.registrations(etcd), min(ttl, lab.app.max_ttl) + EXPIRY_SLACK_S, step=0.2)
    took = time.monotonic() - t0
    assert gone, f"{name} was killed {took:.1f} s ago and is still registered (its lease had {ttl} s)"
    view = wait_until(lambda: name not in app.frontend_view().get("backends", {}), 2, step=0.2)
    assert view, f"the frontend still lists {name} after etcd dropped it"
    answers = app.ask_frontend(times=6)
    assert name not in answered_by(answers) and all("answered_by" in a for a in answers), (
        f"after the kill: {[a for a in answers if 'answered_by' not in a][:2]}"
    )
    return f"killed instance gone from the registry after {took:.1f} s (lease TTL {ttl} s)"


@pytest.fixture(scope="module")
def swarm_experiments(lab, etcd, request):
    """``swarm_experiments(check_id)`` runs (or collects) LAB5-13's and LAB5-12's experiment.

    Reference mode: on a second, smaller deployment of the reference app, in the background from
    the module's start — deployed, rolling update, kill, removed, one after the other — while the
    module's other checks observe and scale the first deployment; beside them, the kuryr line
    (kuryr_experiments). The module takes about as long as the longest line, not their sum
    (lab5 alone: 15 s, bench/bench_suites.py).
    Attendee mode: there is only the attendee's deployment, so each experiment runs in its own
    check, in the module's order."""
    if lab.app.mode != "reference":
        app = request.getfixturevalue("app")
        attendee = {
            "LAB5-13": lambda: rolling_update(app, etcd),
            "LAB5-12": lambda: killed_instance_expires(app, etcd, lab),
        }
        yield lambda check_id: attendee[check_id]()
        return
    from pytest_workshop.plugin.fixtures_app import deploy_reference, undeploy_reference

    request.getfixturevalue("swarm_placement_steady")  # its tasks stay where they are, as the first's
    factory, image = request.getfixturevalue("swarm_services_module"), request.getfixturevalue("app_image")
    deferred_cleanup = request.getfixturevalue("deferred_cleanup")

    def kill_then_remove(deployed) -> str:
        twin = deployed.result()
        try:
            return killed_instance_expires(twin, etcd, lab)
        finally:
            # removed now, not at the module's end (nothing else uses it), and beside LAB5-12's
            # verdict rather than before it
            deferred_cleanup(lambda: undeploy_reference(twin, etcd))

    with (
        in_background(
            "second deployment", deploy_reference, TWIN_DEPLOY_BOUND_S, lab, factory, image, "app2", TWIN_BACKENDS
        ) as deployed,  # fmt: skip
        in_background(
            "rolling update", lambda: rolling_update(deployed.result(), etcd), TWIN_UPDATE_BOUND_S, after=deployed
        ) as update,  # fmt: skip
        in_background("killed instance", kill_then_remove, TWIN_KILL_BOUND_S, deployed, after=update) as kill,
    ):
        experiments = {"LAB5-13": update, "LAB5-12": kill}
        yield lambda check_id: experiments[check_id].result()


# --- the same app on a kuryr network: addresses from Neutron ---------------------------------------


def kuryr_registered(app_on_kuryr, etcd) -> dict:
    """Wait until every backend container on the kuryr network is registered; the registrations."""
    wait_until(lambda: set(app_on_kuryr.registrations(etcd)) >= set(app_on_kuryr.backends), REGISTER_WITHIN_S, step=0.3)
    registered = app_on_kuryr.registrations(etcd)
    missing = sorted(set(app_on_kuryr.backends) - set(registered))
    if missing:
        raise WorkshopError(
            f"backends on the kuryr network not registered after {REGISTER_WITHIN_S:g} s: {', '.join(missing)}",
            hint="they reach etcd over Docker's bridge network: check the engine's NAT and the etcd endpoints",
        )
    return registered


@pytest.mark.check(
    "LAB5-16",
    "On kuryr: every instance has an ACTIVE Neutron port whose IP is the address it registered",
    component="kuryr",
    hint="a DOWN port: ovn-controller does not bind it (lab4, LAB4-09); another IP: the service registered the wrong network's address (ADVERTISE_SUBNET)",
)
def test_kuryr_ports_are_the_registered_addresses(kuryr_experiments):
    kuryr_experiments["LAB5-16"].result()


def ports_are_registered_addresses(app_on_kuryr, f, etcd) -> None:
    """LAB5-16's look at the kuryr deployment."""
    registered = kuryr_registered(app_on_kuryr, etcd)
    problems = []
    for name, container in sorted(app_on_kuryr.backends.items()):
        port = f.port_of(container, app_on_kuryr.network)
        if port is None:
            problems.append(f"{name} has no Neutron port")
            continue
        port = f.wait_port_status(port.id, "ACTIVE", REGISTER_WITHIN_S)
        ips = [ip["ip_address"] for ip in port.fixed_ips]
        if port.status != "ACTIVE":
            problems.append(f"{name}'s port {port.id} is {port.status}")
        if registered[name].address not in ips:
            problems.append(f"{name} registered {registered[name].address}, its port has {', '.join(ips)}")
    assert not problems, "; ".join(problems)


@pytest.mark.check(
    "LAB5-17",
    "On kuryr: removing the security-group rule from frontend to a backend is noticed by the frontend",
    component="kuryr",
    timeout=60,
    hint="Neutron security groups are enforced by OVN ACLs (lab4, LAB4-13); the frontend must skip a backend it cannot reach, not fail the request",
)
def test_kuryr_security_group_noticed(kuryr_experiments):
    kuryr_experiments["LAB5-17"].result()


@pytest.fixture(scope="module")
def kuryr_experiments(app_on_kuryr_started, kuryr_networks_module, etcd):
    """The kuryr deployment's line, in the background from the module's start: once it is up,
    LAB5-16's look at its ports, then LAB5-17's experiment on it, then its removal. It is nobody
    else's, so it goes here rather than at the module's end: kuryr and Neutron take about 3 s to
    remove it, which would otherwise be the run's last 3 s."""
    f = kuryr_networks_module

    def remove() -> None:
        app_on_kuryr_started.finish()  # nothing may still be creating
        f.cleanup()  # the module's deferred clean-up finds nothing left, or removes what this could not

    with (
        in_background(
            "kuryr ports",
            lambda: ports_are_registered_addresses(app_on_kuryr_started.get(), f, etcd),
            KURYR_EXPERIMENT_BOUND_S,
        ) as ports,
        in_background(
            "kuryr security group",
            lambda: security_group_noticed(app_on_kuryr_started.get(), f, etcd, restore=False),
            KURYR_EXPERIMENT_BOUND_S,
            after=ports,
        ) as security_group,
        in_background("kuryr clean-up", remove, KURYR_EXPERIMENT_BOUND_S, after=security_group),
    ):
        yield {"LAB5-16": ports, "LAB5-17": security_group}


def security_group_noticed(app_on_kuryr, f, etcd, restore: bool = True) -> None:
    """LAB5-17's experiment. ``restore=False``: the victim's port keeps the experiment's security
    group (it is removed with the deployment right after: putting it back is a Neutron call of
    half a second for nothing)."""
    n = f.neutron.network
    registered = kuryr_registered(app_on_kuryr, etcd)
    name, victim = sorted(app_on_kuryr.backends.items())[0]
    port = f.port_of(victim, app_on_kuryr.network)
    assert port is not None, f"no Neutron port for {name}"
    sg = f.security_group(port.project_id)
    rule = n.create_security_group_rule(security_group_id=sg.id, direction="ingress", ethertype="IPv4",
                                        protocol="tcp", port_range_min=8080, port_range_max=8080)  # fmt: skip
    original = list(port.security_group_ids)
    n.update_port(port, security_group_ids=[sg.id])
    # as many requests as backends: the frontend's rotation starts each at the next backend, so one
    # of them starts at the victim (and, once it is cut off, waits the frontend's 1 s on it)
    try:
        served = wait_until(lambda: name in answered_by(app_on_kuryr.ask_frontend(times=len(registered))), 8, step=0.3)
        assert served, f"{name} gets no request even with an ingress rule for TCP 8080"
        n.delete_security_group_rule(rule)
        answers: list[dict] = []

        def noticed() -> bool:
            answers[:] = app_on_kuryr.ask_frontend(times=len(registered), timeout=5)
            return name not in answered_by(answers)

        assert wait_until(noticed, 8, step=0.3), (
            f"{name} still answers the frontend 8 s after its ingress rule was removed"
        )
        failed = [a for a in answers if "answered_by" not in a]
        assert not failed, f"the frontend failed {len(failed)} of {len(answers)} requests instead of skipping {name}"
    finally:
        if restore:
            n.update_port(port, security_group_ids=original)
