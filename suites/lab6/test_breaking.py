"""Lab 6: breaking Docker, Swarm, etcd and Kuryr, and debugging it.

Two kinds of checks:
- resilience (LAB6-01..08, disruptive): each injects a fault and asserts what the workshop teaches
  (LAB6-07 and 08 on lab5's microservices: registrations through an etcd leader change, serving
  while etcd is unreachable).
  They run only where the lab's configuration says ``allow_breakage = true`` *and* pytest gets
  ``--allow-breakage``; every fault is restored at the end of the check.
- "healthy again" (LAB6-10..14): after an instructor breaks something (`workshop break`) and the
  attendee repairs it, these say whether the lab is whole again, and point at what is not.
"""

from __future__ import annotations

import threading
import time

import pytest

from pytest_workshop.api import WorkshopError, wait_until

pytestmark = pytest.mark.workshop_lab("lab6", "Lab 6: Breaking and debugging", requires=["docker"])


# --- resilience ---------------------------------------------------------------------------------------


class Writer(threading.Thread):
    """Writes numbered keys as fast as etcd acknowledges them; remembers every acknowledged one."""

    def __init__(self, etcd, keyspace) -> None:
        super().__init__(daemon=True)
        self.etcd, self.keyspace = etcd, keyspace
        self.acked: list[bytes] = []
        self.acked_at: list[float] = []  # time.monotonic() of each acknowledgement
        self.errors = 0
        self.halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            key = self.keyspace.key(f"k{i:06d}")
            try:
                self.etcd.put(key, b"v")
                self.acked.append(key)
                self.acked_at.append(time.monotonic())
            except Exception:
                self.errors += 1
            i += 1


@pytest.mark.disruptive
@pytest.mark.check(
    "LAB6-01",
    "etcd keeps serving with one of three members down, and loses no acknowledged write",
    step="6.5",
    component="etcd",
    timeout=60,
    hint="a 3-member cluster tolerates one failure: if writes stop, quorum was already degraded (LAB3-01)",
)
def test_etcd_survives_one_member(etcd, etcd_keyspace, fault, lab, record_property):
    writer = Writer(etcd, etcd_keyspace)
    writer.start()
    wait_until(lambda: writer.acked, 5, step=0.05)  # writing before the fault
    entry = fault("etcd-leader-killed")
    killed_at = time.monotonic()
    before = len(writer.acked)
    # A write in flight when the leader dies is lost with it, and etcd answers it only at its own
    # request timeout: the client gives up on that member after [timeouts] request and writes to the
    # next. So the window is two such bounds plus the election, not a fixed few seconds (a 5 s window
    # against a 5 s request bound raced: "no write acknowledged" on a healthy cluster).
    window = 2 * lab.timeouts.request + 3
    wait_until(lambda: len(writer.acked) - before >= 20, window, step=0.1)
    during = len(writer.acked) - before
    writer.halt.set()
    writer.join(lab.timeouts.request * 3 + 1)
    first = f"{writer.acked_at[before] - killed_at:.1f} s after the kill" if during else "none"
    record_property(
        "note",
        f"killed {entry.data['members']}; {len(writer.acked)} writes acknowledged, {during} while it was down "
        f"(first: {first})",
    )
    assert during > 0, f"no write was acknowledged in the {window:g} s after one member went down"
    missing = [k for k in writer.acked if etcd.get(k) is None]
    assert not missing, f"{len(missing)} acknowledged writes are lost, e.g. {missing[0].decode()}"


@pytest.mark.disruptive
@pytest.mark.check(
    "LAB6-02",
    "Without quorum etcd refuses writes within its bound, and recovers after restore",
    step="6.5",
    component="etcd",
    timeout=90,
    hint="writes must fail fast (not hang) without quorum; after the members return, the first write should "
    "succeed within seconds: check the members' logs for election trouble",
)
def test_etcd_quorum_loss(etcd, etcd_keyspace, fault, lab, record_property):
    key = etcd_keyspace.key("q")
    entry = fault("etcd-quorum-lost")
    t0 = time.monotonic()
    with pytest.raises(WorkshopError):
        etcd.put(key, b"v")
    refused_after = time.monotonic() - t0
    bound = 3 * (lab.timeouts.request + 1)  # a call tries up to every endpoint, each bounded
    assert refused_after < bound, f"the write took {refused_after:.1f} s to fail (bound {bound:g} s)"
    fault.restore(entry)
    t1 = time.monotonic()

    def writes() -> bool:
        try:
            etcd.put(key, b"v")
            return True
        except WorkshopError:
            return False

    assert wait_until(writes, 30, step=0.5), "writes still fail 30 s after the members came back"
    record_property(
        "note", f"refused after {refused_after:.2f} s; writable again {time.monotonic() - t1:.1f} s after restore"
    )


@pytest.mark.disruptive
@pytest.mark.check(
    "LAB6-03",
    "Swarm elects a new leader after the leader's engine dies, and keeps serving",
    step="6.5",
    component="swarm",
    timeout=90,
    hint="a new leader needs a majority of managers: with 3 managers, 2 must be up (LAB2-04, LAB2-06)",
)
def test_swarm_new_leader(swarm, swarm_node_clients, fault, record_property):
    old = swarm.leader
    assert old is not None, "no leader before the fault"
    fault("swarm-leader-engine-killed")
    t0 = time.monotonic()
    others = {name: c for name, c in swarm_node_clients.items() if name != old.hostname}

    def new_leader() -> str | None:
        for client in others.values():
            try:
                for n in client.nodes.list():
                    if (n.attrs.get("ManagerStatus") or {}).get("Leader"):
                        host = n.attrs["Description"]["Hostname"]
                        if host != old.hostname:
                            return str(host)
            except Exception:
                continue
        return None

    leader = wait_until(new_leader, 30, step=0.5)
    assert leader, f"no new leader within 30 s after {old.hostname}'s engine died"
    # ...and keeps serving: the new leader lists the nodes, with itself as the leader and the old
    # one among them
    seen = {n.attrs["Description"]["Hostname"]: n.attrs for n in others[leader].nodes.list()}
    assert (seen.get(leader, {}).get("ManagerStatus") or {}).get("Leader"), f"{leader} does not list itself as leader"
    assert old.hostname in seen, f"the new leader {leader} does not list {old.hostname} any more"
    services = others[leader].services.list()
    record_property(
        "note",
        f"{leader} leads {time.monotonic() - t0:.1f} s after {old.hostname} died; lists {len(services)} services",
    )


@pytest.mark.disruptive
@pytest.mark.check(
    "LAB6-04",
    "Tasks of a crashed node are rescheduled on the others",
    step="6.5",
    component="swarm",
    timeout=150,
    hint="Swarm reschedules once the node is Down (about 15 s); tasks that cannot move are pinned by constraints "
    "or their image is missing on the other nodes",
)
def test_tasks_rescheduled(swarm_services, swarm_node_clients, swarm_test_image, fault, record_property):
    nodes = sorted(swarm_node_clients)
    victim = nodes[-1]
    service = swarm_services.create(swarm_test_image, ["sleep", "3600"], mode={"Replicated": {"Replicas": len(nodes)}})
    service.wait_converged(len(nodes))
    fault("node-crashed")
    t0 = time.monotonic()

    def moved() -> bool:
        try:
            running = service.running()
        except Exception:  # the managers are busy noticing the crash: ask again
            return False
        return len(running) == len(nodes) and all(t.node != victim for t in running)

    assert wait_until(moved, 90, step=1), (
        f"tasks were not rescheduled off {victim} within 90 s: {service.describe_tasks()}"
    )
    record_property("note", f"all {len(nodes)} tasks running off {victim} after {time.monotonic() - t0:.1f} s")


@pytest.mark.check(
    "LAB6-05",
    "A service keeps answering during a rolling update",
    step="6.5",
    component="swarm",
    timeout=90,
    hint="use update order start-first with more than one replica, and a health/readiness delay: with stop-first "
    "or one replica there is a moment with nothing to answer",
)
def test_service_answers_during_update(swarm_services, swarm_test_image, docker_client, record_property, lab):
    from docker.types import EndpointSpec, ServiceMode, UpdateConfig

    net = swarm_services.overlay()
    web = swarm_services.create(
        swarm_test_image,
        ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"],
        mode=ServiceMode("replicated", replicas=2),
        networks=[net.name],
        endpoint_spec=EndpointSpec(mode="dnsrr"),  # VIP needs ip_vs (LAB2-17)
        update_config=UpdateConfig(parallelism=1, delay=1_000_000_000, order="start-first", monitor=1_000_000_000),
    )
    web.wait_converged()
    # A client on the overlay asks twice a second; a request counts as lost only if a retry a moment
    # later fails too (a client would retry): what matters is that the service never goes dark.
    # (busybox nc, not wget: this busybox-static's wget crashes.) -w 2: at -n 8 an answer can take
    # over a second; a dark service is still seen at once (refused, or a name with no address).
    ask = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {web.name} 8080 2>/dev/null | grep -q '^ok'"
    loop = f"while true; do if {ask} || (sleep 0.2; {ask}); then echo ok; else echo lost; fi; sleep 0.3; done"
    with swarm_services.join_guard():  # it joins the overlay on its node as a task would (components/swarm.py)
        client = docker_client.containers.run(
            swarm_test_image,
            ["sh", "-c", loop],
            network=net.name,
            detach=True,
            labels=swarm_services.labels,
            name=swarm_services.name("client"),
        )
    try:
        # Until the first answer the service may not be known on the client's node yet: its entries
        # arrive by gossip, which dockerd 20.10 can hold up for 30 s on a healthy lab (README,
        # [timeouts]). What must hold is that, once it answers, no request is lost before the update.
        first = wait_until(lambda: "ok" in client.logs().decode().splitlines(), lab.timeouts.converge, step=0.5)
        assert first, f"the client on the overlay got no answer from {web.name} in {lab.timeouts.converge:g} s"
        start = client.logs().decode().splitlines().index("ok")
        wait_until(lambda: len(client.logs().splitlines()) >= start + 6, 10, step=0.3)  # answers before the update
        warmup = client.logs().decode().splitlines()[start:]
        assert "lost" not in warmup, (
            f"the client loses requests even before the update: {warmup.count('lost')} of {len(warmup)} after its first answer"
        )
        before = start + len(warmup)
        web.obj.update(env=["WORKSHOP_VERSION=2"])
        web.wait("finish its rolling update", lambda: web.update_state() == "completed")
        done_at = len(client.logs().splitlines())
        wait_until(lambda: len(client.logs().splitlines()) >= done_at + 2, 5, step=0.2)  # asked after it too
        lines = client.logs().decode().splitlines()[before:]
    finally:
        client.remove(force=True)
    lost = lines.count("lost")
    record_property("note", f"{len(lines)} requests during the update, {lost} lost")
    assert lines, "the client made no request during the update"
    assert lost == 0, f"{lost} of {len(lines)} requests got no answer during the rolling update"


@pytest.mark.disruptive
@pytest.mark.check(
    "LAB6-06",
    "A kuryr container keeps its Neutron port across a kuryr restart",
    step="6.5",
    component="kuryr",
    timeout=90,
    hint="kuryr keeps no state of its own: after a restart it must find the existing ports by their tags",
)
def test_kuryr_restart_keeps_port(kuryr_networks, fault):
    knet = kuryr_networks.create()
    c1, c2 = kuryr_networks.run(knet), kuryr_networks.run(knet)
    port = kuryr_networks.port_of(c1, knet)
    assert port is not None, "no Neutron port for the container"
    fault.restore(fault("kuryr-not-answering"))
    after = kuryr_networks.port_of(c1, knet)
    assert after is not None and after.id == port.id, f"port {port.id} was replaced by {after and after.id}"
    ip1 = kuryr_networks.endpoint(c1, knet)["IPAddress"]
    assert wait_until(lambda: kuryr_networks.ping(c2, ip1), 10), (
        "the containers cannot reach each other after the restart"
    )


def app_settled(app, etcd) -> None:
    """Before a fault: lab5's backend converged, and the registry lists exactly its running instances."""
    app.backend.wait_converged()
    settled = wait_until(
        lambda: app.registrations(etcd) and set(app.registrations(etcd)) == set(app.instances()), 10, step=0.3
    )
    assert settled, (
        f"the registry does not match the running backends before the fault: {sorted(app.registrations(etcd))}"
    )


@pytest.mark.disruptive
@pytest.mark.check(
    "LAB6-07",
    "The app's registrations survive an etcd leader change",
    step="6.5",
    component="etcd",
    timeout=90,
    hint="an instance must keep its lease alive through any member (ETCD_ENDPOINTS lists them all) and "
    "register again if its lease was lost; a TTL shorter than the failover leaves gaps",
)
def test_registrations_survive_leader_change(app, etcd, fault, record_property):
    app_settled(app, etcd)
    expected = set(app.instances())
    entry = fault("etcd-leader-killed")
    missing_at: list[tuple[float, list[str]]] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 8:  # longer than two of the app's lease TTLs
        try:
            present = set(app.registrations(etcd))
        except WorkshopError:
            continue  # our own read failed over: not the app's doing
        if expected - present:
            missing_at.append((round(time.monotonic() - t0, 1), sorted(expected - present)))
        time.sleep(0.2)
    record_property("note", f"killed {entry.data['members']}; samples with a registration missing: {len(missing_at)}")
    assert not missing_at, f"registrations vanished while the leader changed: {missing_at[:3]}"


@pytest.mark.disruptive
@pytest.mark.check(
    "LAB6-08",
    "While etcd is unreachable from the app, the frontend keeps serving from the backends it knew",
    step="6.5",
    component="etcd",
    timeout=90,
    hint="discovery must not be a single point of failure: keep the last known backends when the watch "
    "breaks, and register again (new lease) once etcd is back",
)
def test_frontend_serves_without_etcd(app, etcd, fault, record_property):
    app_settled(app, etcd)
    entry = fault("app-etcd-cut-off")
    # past the leases' TTL: etcd drops the registrations, the frontend cannot hear it and must not care.
    # Paced (10 a second), not back to back: the app's CPU is the busy machine's too.
    stream = app.stream_requests(interval=0.1)
    try:
        time.sleep(6)
    finally:
        answers = stream.stop()
    failed = [a for a in answers if "answered_by" not in a]
    fault.restore(entry)
    back = wait_until(lambda: set(app.registrations(etcd)) == set(app.instances()), 15, step=0.3)
    record_property(
        "note", f"{len(answers)} requests while cut off, {len(failed)} failed; registered again: {bool(back)}"
    )
    assert answers and not failed, (
        f"{len(failed)} of {len(answers)} requests failed while etcd was unreachable: {failed[:2]}"
    )
    assert back, (
        f"15 s after etcd was reachable again the registry has {sorted(app.registrations(etcd))}, running {sorted(app.instances())}"
    )


# --- healthy again ---------------------------------------------------------------------------------------


@pytest.mark.check(
    "LAB6-10",
    "Every Docker engine of the lab answers",
    step="6.1",
    component="docker",
    hint="start the engine that is down (`systemctl start docker` on that machine) or resume it if it hangs",
)
def test_engines_answer(swarm_node_clients):
    assert not swarm_node_clients.unreachable, "not answering: " + "; ".join(
        f"{h}: {why}" for h, why in swarm_node_clients.unreachable.items()
    )


@pytest.mark.check(
    "LAB6-11",
    "The Swarm is whole: every node Ready and active, one leader",
    step="6.1",
    component="swarm",
    hint="`docker node ls`: start or reconnect the node that is Down, `docker node update --availability active` "
    "a drained one",
)
def test_swarm_whole(swarm_nodes_steady, swarm):
    bad = [
        f"{n.hostname} {n.state}/{n.availability}"
        for n in swarm.nodes
        if n.state != "ready" or n.availability != "active"
    ]
    assert not bad, "not Ready/active: " + ", ".join(bad)
    assert swarm.leader is not None, "the Swarm has no leader"


@pytest.mark.check(
    "LAB6-12",
    "etcd is whole: every member healthy and agreeing on one leader, no alarm",
    step="6.1",
    component="etcd",
    hint="`etcdctl endpoint status --cluster -w table`: start, resume or reconnect the member that is missing; "
    "NOSPACE alarm: delete what filled it, compact, `etcdctl defrag --cluster`, `etcdctl alarm disarm`",
)
def test_etcd_whole(etcd_cluster, lab):
    failing = [f"{s.endpoint}: {s.error}" for s in etcd_cluster.statuses if not s.ok]
    assert not failing, "; ".join(failing)
    # a member that answers with leader 0 has no leader (it is cut off): it is not whole
    leaderless = [s.endpoint for s in etcd_cluster.statuses if s.leader_id == 0]
    assert not leaderless, f"no leader as seen from {', '.join(leaderless)} (cut off from the others?)"
    assert len(etcd_cluster.leaders) == 1, f"members disagree about the leader: {etcd_cluster.leaders}"
    assert not etcd_cluster.alarms, f"alarms: {etcd_cluster.alarms}"


@pytest.mark.check(
    "LAB6-13",
    "OpenStack is whole: Keystone and Neutron answer, the OVN agent is alive",
    step="6.1",
    component="openstack",
    hint="start the service named above (DevStack: `sudo systemctl restart devstack@keystone` / `devstack@q-svc`, "
    "`ovn-controller`)",
)
def test_openstack_whole(devstack):
    # devstack lists agents with the admin cloud: a refusal (403) fails the fixture, it is no empty list
    controllers = [a for a in devstack.agents if "ovn controller" in a.agent_type.lower()]
    assert controllers, "Neutron lists no OVN controller agent: ovn-controller never registered its chassis"
    dead = [a.host for a in controllers if not a.alive]
    assert not dead, f"the OVN controller agent on {', '.join(dead)} is not alive"


@pytest.mark.check(
    "LAB6-14",
    "kuryr is whole: it answers Docker's activation call",
    step="6.1",
    component="kuryr",
    hint="start kuryr-libnetwork (DevStack: `sudo systemctl restart devstack@kuryr-libnetwork`)",
)
def test_kuryr_whole(kuryr_plugin):
    assert kuryr_plugin.problem() is None, kuryr_plugin.problem()
