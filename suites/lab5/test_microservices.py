"""Lab 5: deploying microservices — services on Swarm that register in etcd and find each other there.

The deployment checked is the attendee's stack ([app] mode = "attendee", the default) or the
reference app the suite deploys itself ([app] mode = "reference", the embedded lab). The
observations (LAB5-01..09, 15) look at it as it is; the experiments (LAB5-10..14) change it the
way the guide does and put it back; LAB5-16, 17 run the same app on a kuryr network."""

from __future__ import annotations

import time

import pytest

from pytest_workshop.api import experiment, wait_until

pytestmark = pytest.mark.workshop_lab(
    "lab5", "Lab 5: Deploying microservices", requires=["swarm", "etcd"], stands_on=["swarm overlay"]
)

# Bounds, from the reference app on the embedded lab (2 cores): a started instance registers in
# 0.3-1 s, a graceful stop deregisters before its task is gone, etcd expires a lease on a 500 ms
# sweep. Each bound is several times what was measured; what a check proves does not change.
REGISTER_WITHIN_S = 10.0  # a running instance is registered (and its frontend knows it)
DEREGISTER_WITHIN_S = 2.0  # a gracefully stopped instance is gone from the registry
EXPIRY_SLACK_S = 3.0  # past the lease's TTL, for a killed instance's registration
CONFIG_WITHIN_S = 3.0  # a configuration change reaches every instance
DNS_GOSSIP_S = 10.0  # Swarm's DNS learns other nodes' tasks by gossip (lab2, LAB2-14)
# From the module's start, on reference mode's second deployment: rolling update (6 s, 20 s busy),
# then the kill (4 s); on kuryr: the deployment, LAB5-16, then 17. Several times the busy figures.
UPDATE_BOUND_S, KILL_BOUND_S, KURYR_EXPERIMENT_BOUND_S = 120.0, 150.0, 120.0


def reference_mode(lab) -> bool:
    """Only reference mode has a second deployment for the experiments to change while the other
    checks look at the first; in attendee mode they run in their own check, in order."""
    return lab.app.mode == "reference"


def answered_by(answers: list[dict]) -> set[str]:
    return {a["answered_by"] for a in answers if "answered_by" in a}


# --- the deployment as it is -------------------------------------------------------------------------


@pytest.mark.check(
    "LAB5-01",
    "The app is deployed: its backend and frontend services exist on the Swarm",
    step="5.1",
    component="swarm",
    hint="deploy the stack: `ETCD_ENDPOINTS=... docker stack deploy -c fixtures/apps/registry-demo/stack.yml registry-demo` (suites/lab5/README.md)",
)
def test_app_deployed(app):
    assert not app.missing(), f"missing services: {', '.join(app.missing())}"


@pytest.mark.check(
    "LAB5-02",
    "Every replica is running, and the backends are spread over the nodes",
    step="5.1",
    component="swarm",
    hint="`docker stack ps registry-demo --no-trunc` says why a task does not run (image missing on a node? no eligible node?)",
)
def test_replicas_running_and_spread(app, swarm):
    for service in (app.backend, app.frontend):
        service.wait_converged(timeout=REGISTER_WITHIN_S)
    nodes = {t.node for t in app.backend.running()}
    ready = [n for n in swarm.nodes if n.state == "ready" and n.availability == "active"]
    # No node holds every backend: one node's failure never takes the whole backend down. Not one
    # per node: Swarm does not keep that through a start-first rolling update (the old task still
    # counts on its node while the new one is placed), and the guide's step 5.5 makes one.
    want = min(2, len(app.backend.running()), len(ready))
    assert len(nodes) >= want, (
        f"all {len(app.backend.running())} backends run on {', '.join(sorted(nodes))} of {len(ready)} available "
        "nodes: that node's failure takes the whole backend down"
    )


@pytest.mark.check(
    "LAB5-03",
    "Every running backend instance is registered in etcd",
    step="5.2",
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
    step="5.2",
    component="etcd",
    hint="register the address of the container on the app's overlay network (not 127.0.0.1, not the node's) and the port the service listens on",
)
def test_registered_addresses_are_real(app, etcd):
    app.settle(etcd, REGISTER_WITHIN_S)
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
    step="5.2",
    component="etcd",
    hint="put the registration with a lease (`etcdctl lease grant 5`, `put --lease=ID`) and keep it alive: a registration without one outlives a crashed instance",
)
def test_registrations_have_leases(app, etcd, lab):
    app.settle(etcd, REGISTER_WITHIN_S)
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
    step="5.2",
    component="etcd",
    hint="a stale entry outlived its instance: delete it (`etcdctl del KEY`), and register with a lease so the next one expires by itself",
)
def test_no_stale_registrations(app, etcd, lab):
    # An instance that just died (here, or in another run's experiment) keeps its entry until its
    # lease expires: each entry seen stale gets that long, no more. One without a lease never
    # expires: stale at once. Entries that turn up later are not this check's business.
    seen = app.stale_entries(etcd)
    allowance = max((etcd.time_to_live(lease) for lease in seen.values() if lease), default=0)
    if any(seen.values()):
        bound = min(allowance, lab.app.max_ttl) + EXPIRY_SLACK_S
        wait_until(lambda: not (set(seen) & set(app.stale_entries(etcd))), bound, step=0.5)
    left = sorted(set(seen) & set(app.stale_entries(etcd)))
    leases = {k: f"lease {lease:x}" if lease else "no lease" for k, lease in seen.items()}
    assert not left, f"entries under {app.registry_prefix} with no running instance: " + ", ".join(
        f"{key.decode()} ({leases[(key, rev)]})" for key, rev in left
    )


@pytest.mark.check(
    "LAB5-07",
    "The frontend answers, and its requests reach every registered backend",
    step="5.3",
    component="swarm",
    hint="a backend the frontend cannot use: if it does not answer at all, see LAB5-15 and its logs; if only across nodes, the overlay is cut (VXLAN UDP 4789 and gossip TCP/UDP 7946 must pass between the nodes)",
)
def test_frontend_reaches_every_backend(app, etcd):
    app.settle(etcd, REGISTER_WITHIN_S)
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
    step="5.3",
    component="etcd",
    hint="the frontend must watch the registry prefix and apply every PUT and DELETE; `docker service logs registry-demo_frontend` shows whether it reaches etcd",
)
def test_frontend_view_is_the_registry(app, etcd):
    app.settle(etcd, REGISTER_WITHIN_S)
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
    step="5.3",
    component="swarm",
    hint="the two views of one service differ: an instance registered that Swarm does not run (stale), or one Swarm runs that did not register",
)
def test_dns_and_registry_agree(app, etcd):
    app.settle(etcd, REGISTER_WITHIN_S)
    registered = {r.address for r in app.registrations(etcd).values()}
    resolved: set[str] = set()

    def agree() -> bool:
        resolved.clear()
        resolved.update(app.backends_resolved())
        return resolved == registered

    wait_until(agree, DNS_GOSSIP_S, step=0.5)
    assert resolved == registered, (
        f"tasks.{app.backend_name} resolves to {sorted(resolved)}, the registry has {sorted(registered)}"
    )


# --- experiments: change the deployment the way the lab step does, then put it back --------------------


@pytest.mark.check(
    "LAB5-10",
    "Scaling up: new instances register and receive traffic within a bound",
    step="5.4",
    component="etcd",
    timeout=60,
    hint="new instances must register as they start; the frontend must pick them up from its watch without a restart",
)
def test_scale_up(app, etcd):
    app.settle(etcd, REGISTER_WITHIN_S)
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
    step="5.4",
    component="etcd",
    timeout=60,
    hint="on SIGTERM an instance must delete its registration (and revoke its lease) before it stops serving; with --init the signal reaches it",
)
def test_scale_down(app, etcd):
    app.settle(etcd, REGISTER_WITHIN_S)
    before = app.registrations(etcd)
    if len(before) < 2:
        app.backend.scale(2)  # one instance to stop, one to keep serving
        app.settle(etcd, REGISTER_WITHIN_S, 2)
        before = app.registrations(etcd)
    with app.traffic() as traffic:
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


@experiment(bound=KILL_BOUND_S, requires="swarm", early=reference_mode, after="rolling_update")
def killed_instance(app_for_experiments, etcd, lab):
    """One backend killed with SIGKILL (no deregistration), after the rolling update: the
    replacement comes after Swarm's restart delay (5 s), and nothing after it needs the
    deployment settled."""
    return app_for_experiments.result().kill_one(etcd, REGISTER_WITHIN_S, lab.app.max_ttl, EXPIRY_SLACK_S)


@pytest.mark.check(
    "LAB5-12",
    "An instance killed hard vanishes from the registry within its TTL, and the frontend stops using it",
    step="5.5",
    component="etcd",
    hint="a killed instance cannot deregister: only its lease's expiry removes it, so keep the TTL short (seconds) and keep it alive from the instance",
)
def test_killed_instance_expires(killed_instance, record_property):
    kill = killed_instance.result()
    assert kill.gone_after is not None, (
        f"{kill.name} is still registered {kill.waited:g} s after it was killed (its lease had {kill.ttl} s)"
    )
    record_property(
        "note", f"killed instance gone from the registry after {kill.gone_after:.1f} s (lease TTL {kill.ttl} s)"
    )
    assert kill.frontend_dropped, f"the frontend still lists {kill.name} after etcd dropped it"
    failed = [a for a in kill.answers_after if "answered_by" not in a]
    assert kill.name not in answered_by(kill.answers_after) and not failed, f"after the kill: {failed[:2]}"


@experiment(bound=UPDATE_BOUND_S, requires="swarm", early=reference_mode)
def rolling_update(app_for_experiments, etcd):
    """A new VERSION rolled out to the backend under traffic."""
    return app_for_experiments.result().roll_out(etcd, REGISTER_WITHIN_S)


@pytest.mark.check(
    "LAB5-13",
    "A rolling update keeps the app answering, with no failed request",
    step="5.5",
    component="swarm",
    hint="update one instance at a time with start-first (`update_config: order: start-first`), and deregister on SIGTERM before stopping",
)
def test_rolling_update(rolling_update, record_property):
    update = rolling_update.result()
    assert not update.failed, (
        f"{len(update.failed)} of {len(update.answers)} requests failed during the update: {update.failed[:2]}"
    )
    assert update.versions_after == {update.version}, (
        f"after the update the frontend got versions {sorted(update.versions_after)}, not only {update.version}"
    )
    record_property("note", f"rolling update to {update.version}: {len(update.answers)} requests, none failed")


@pytest.mark.check(
    "LAB5-14",
    "A configuration change written to etcd reaches every instance within a bound",
    step="5.6",
    component="etcd",
    hint="the services must watch their configuration key (<config prefix><stack>/greeting) and apply changes live, without a restart",
)
def test_config_change_reaches_everyone(app, etcd, lab):
    app.settle(etcd, REGISTER_WITHIN_S)
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


@pytest.mark.check(
    "LAB5-15",
    "Every registered backend answers its health check (no registered instance is a zombie)",
    step="5.2",
    component="swarm",
    hint="a registered instance that does not answer: ask it from inside (`docker exec CONTAINER python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/health').read())\"`); silent there too: it is a zombie (its logs; only an instance that serves may keep its lease alive); answers there: the network between the nodes is cut (LAB5-07)",
)
def test_no_zombies(app, etcd):
    app.settle(etcd, REGISTER_WITHIN_S)
    silent = app.silent_backends(list(app.registrations(etcd).values()))
    assert not silent, f"registered but not answering /health within 2 s: {', '.join(silent)}"


# --- the same app on a kuryr network: addresses from Neutron ---------------------------------------


@experiment(bound=KURYR_EXPERIMENT_BOUND_S, requires="kuryr", title="kuryr ports")
def kuryr_ports(app_on_kuryr, kuryr_networks_module, etcd):
    """Each backend on the kuryr network: its Neutron port, its status, its IPs against the
    address it registered. What does not match, in words."""
    return app_on_kuryr.result().port_problems(kuryr_networks_module, etcd, REGISTER_WITHIN_S)


@pytest.mark.check(
    "LAB5-16",
    "On kuryr: every instance has an ACTIVE Neutron port whose IP is the address it registered",
    step="5.7",
    component="kuryr",
    hint="a DOWN port: ovn-controller does not bind it (lab4, LAB4-09); another IP: the service registered the wrong network's address (ADVERTISE_SUBNET)",
)
def test_kuryr_ports_are_the_registered_addresses(kuryr_ports):
    problems = kuryr_ports.result()
    assert not problems, "; ".join(problems)


@experiment(bound=KURYR_EXPERIMENT_BOUND_S, requires="kuryr", after="kuryr_ports", title="kuryr security group")
def kuryr_security_group(app_on_kuryr, kuryr_networks_module, etcd, deferred_cleanup):
    """The ingress rule towards one backend removed from its port's security group. Then the
    kuryr deployment is removed in the background: nothing else uses it, and kuryr and Neutron
    take seconds to remove it."""
    try:
        return app_on_kuryr.result().cut_off_one(kuryr_networks_module, etcd, REGISTER_WITHIN_S)
    finally:
        deferred_cleanup(kuryr_networks_module.cleanup)  # the module's own clean-up then finds nothing left


@pytest.mark.check(
    "LAB5-17",
    "On kuryr: removing the security-group rule from frontend to a backend is noticed by the frontend",
    step="5.7",
    component="kuryr",
    timeout=60,
    hint="Neutron security groups are enforced by OVN ACLs (lab4, LAB4-13); the frontend must skip a backend it cannot reach, not fail the request",
)
def test_kuryr_security_group_noticed(kuryr_security_group):
    seen = kuryr_security_group.result()
    assert seen.served_with_rule, f"{seen.victim} gets no request even with an ingress rule for TCP 8080"
    assert seen.noticed, f"{seen.victim} still answers the frontend 8 s after its ingress rule was removed"
    failed = [a for a in seen.answers if "answered_by" not in a]
    assert not failed, (
        f"the frontend failed {len(failed)} of {len(seen.answers)} requests instead of skipping {seen.victim}"
    )
