"""Public fixtures. Each is a thin shell over the library; heavy clients are imported on first use.

lab                 the resolved LabConfig
workshop_run        the run's identity (Docker label, etcd prefix, name prefix)
docker_client       docker-py client with timeouts (session)
docker_test_image   the suites' image, pulled or built offline (session)
sample_app_recipe   the folder of the sample image lab1 builds (fixtures/images/sample-app)
kernel_features     the lab machine's kernel features (release, present, how; needed_for(feature))
docker_resources    create labelled containers/networks/volumes/images; removed after the test
swarm_node_clients  docker-py clients per Swarm node, keyed by hostname (session; ``.unreachable`` lists failures)
swarm_test_image    the test image, made present on every Swarm node (session)
swarm_seen_from     swarm_seen_from(hostname): a fresh SwarmView as that node's engine sees it
swarm               a fresh SwarmView from the [docker] host (must be a manager): nodes, leader, quorum
swarm_services      ServiceFactory: labelled services, overlays, secrets, configs; bounded waits; removed after
swarm_services_module  the same per module, cleaned up in the background afterwards (deferred_cleanup: session)
swarm_overlay       an attachable, labelled overlay network, removed after the test
etcd                synchronous etcd client rotating across endpoints (session)
etcd_cluster        a fresh ClusterView: members, per-endpoint status, leader, alarms
etcd_keyspace       a per-test key prefix, deleted after the test
lab_change          with lab_change("swarm-node-drained", node=...): a change journalled like a fault, undone after
lab_service_state   state(component, name): running/stopped/paused through the lab's control, or None
lab_host            a testinfra host for the lab machine (``[lab] host``, local by default)
set_node_availability  set_node_availability(hostname, "drain"|"active"|"pause"): `docker node update --availability`
swarm_placement_steady  held by a module whose services must stay where Swarm put them (lab5's app)
swarm_placement_exclusive  with swarm_placement_exclusive(): no such module runs meanwhile (LAB2-12 drains a node)
swarm_nodes_steady  held by a check that judges the nodes' availability (LAB6-11): no drain meanwhile
start_early         start_early(fixture, component): set up a module-scoped fixture at the module's first
                    check (a long experiment then runs in the background while the other checks run)

OpenStack and kuryr (openstack, openstack_admin, devstack, kuryr_*): plugin/fixtures_openstack.py
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_workshop.config.model import LabConfig, section_article
from pytest_workshop.errors import WorkshopError
from pytest_workshop.plugin.state import LAB_KEY, RUN_KEY, is_worker
from pytest_workshop.run import Run

if TYPE_CHECKING:
    from pytest_workshop.components.docker import DockerResources
    from pytest_workshop.components.etcd import ClusterView, EtcdClient, Keyspace
    from pytest_workshop.components.swarm import ServiceFactory, SwarmView


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Finish a clean-up even if Ctrl-C arrives during it; the interrupt is delivered afterwards.

    Without this a second Ctrl-C (or one landing in a teardown) leaves half-removed objects.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            raise KeyboardInterrupt


def _swept_session_client(config: pytest.Config, lab: LabConfig, run: Run, kind: str, client: Any) -> Iterator[Any]:
    """Yield a session client between two sweeps: leftovers of runs known dead before, this run's
    own objects after (only where this process is the whole run)."""
    from pytest_workshop import janitor

    janitor.sweep(lab, include_live="known-dead", **{f"{kind}_client": client})
    yield client
    with _uninterrupted():
        try:
            # only a process that is the whole run: an xdist worker's siblings still use objects
            # with the run's label (the controller sweeps once they are all gone)
            if not is_worker(config):
                janitor.sweep(lab, only_run=run.run_id, **{f"{kind}_client": client})
        finally:
            client.close()


def _cleaned(factory: Any, strict: bool = True) -> Iterator[Any]:
    """Yield a factory, then remove what it created even on Ctrl-C. ``strict``: what could not be
    removed fails the test's teardown (module-scoped factories only try: the session sweep follows)."""
    yield factory
    with _uninterrupted():
        problems = factory.cleanup()
    if problems and strict:
        raise WorkshopError("could not remove: " + "; ".join(problems), hint="run `workshop janitor`")


# How long the session's end waits for module clean-ups still running in the background.
DEFERRED_CLEANUP_WAIT_S = 120.0


@pytest.fixture(scope="session")
def deferred_cleanup() -> Iterator[Any]:
    """Where module-scoped factories clean up: in the background, so that the next module starts
    while kuryr, Neutron and Swarm remove what the last one made (seconds each, on a busy
    machine). Waited for at the end of the session, before the run's final sweep; what is not
    removed by then is the sweep's and the janitor's, as for any module-scoped factory."""
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="workshop-cleanup")
    submitted: list[concurrent.futures.Future[Any]] = []
    yield lambda fn: submitted.append(pool.submit(fn))
    with _uninterrupted():
        concurrent.futures.wait(submitted, timeout=DEFERRED_CLEANUP_WAIT_S)
        pool.shutdown(wait=False)


def _cleaned_later(factory: Any, defer: Any) -> Iterator[Any]:
    """Yield a module-scoped factory, then have ``deferred_cleanup`` remove what it created."""
    yield factory
    defer(factory.cleanup)


def _require(lab: LabConfig, component: str) -> None:
    if not lab.has(component):
        raise WorkshopError(
            f"this lab's configuration ({lab.source}) has no {component}",
            hint=f"add {section_article(component)} [{component}] section to lab.toml",
        )


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> LabConfig:
    """The lab this check checks: the resolved lab configuration (the report header says where it
    came from), or in a fleet run (--labs) one lab of the fleet, by the check's parameter."""
    param = getattr(request, "param", None)
    return param if isinstance(param, LabConfig) else request.config.stash[LAB_KEY]


@pytest.fixture(scope="session")
def workshop_run(pytestconfig: pytest.Config) -> Run:
    """This run's identity, shared by all xdist workers of one run."""
    return pytestconfig.stash[RUN_KEY]


@pytest.fixture(scope="session")
def docker_client(lab: LabConfig, workshop_run: Run, pytestconfig: pytest.Config) -> Iterator[Any]:
    """A docker-py client whose calls are bounded by ``[timeouts] request``."""
    from pytest_workshop.components import docker

    _require(lab, "docker")
    assert lab.docker is not None
    yield from _swept_session_client(
        pytestconfig, lab, workshop_run, "docker", docker.connect(lab.docker, lab.timeouts)
    )


class TestImage(str):
    """The test image's reference; ``how`` says whether it was present, pulled or built offline."""

    how: str = ""


@pytest.fixture(scope="session")
def docker_test_image(docker_client: Any, lab: LabConfig) -> TestImage:
    """Reference of the suites' test image; pulled when allowed and possible, else built offline."""
    from pytest_workshop.components import docker

    assert lab.docker is not None
    ref, how = docker.ensure_test_image(docker_client, lab.docker)
    image = TestImage(ref)
    image.how = how
    return image


@pytest.fixture(scope="session")
def sample_app_recipe() -> Any:
    """The folder of the sample image lab1 builds offline (fixtures/images/sample-app)."""
    from pytest_workshop.components.docker import fixtures_dir

    return fixtures_dir() / "images" / "sample-app"


@pytest.fixture(scope="session")
def kernel_features(lab_host: Any) -> Any:
    """The lab machine's kernel: release, which workshop features it has and how that was found."""
    from pytest_workshop.components import kernel

    return kernel.detect_on(lab_host)


@pytest.fixture
def docker_resources(docker_client: Any, workshop_run: Run) -> Iterator[DockerResources]:
    """Create Docker objects with the run's label; everything is removed after the test."""
    from pytest_workshop.components.docker import DockerResources

    resources = DockerResources(docker_client, workshop_run.labels, workshop_run.name_prefix)
    yield from _cleaned(resources)


class NodeClients(dict[str, Any]):
    """hostname -> docker client; ``unreachable`` maps configured hosts that did not answer to why."""

    def __init__(self) -> None:
        super().__init__()
        self.unreachable: dict[str, str] = {}


@pytest.fixture(scope="session")
def swarm_node_clients(lab: LabConfig, docker_client: Any) -> Iterator[NodeClients]:
    """A client per node from ``[swarm] hosts`` (default: just the [docker] host)."""
    from pytest_workshop.components import docker

    _require(lab, "swarm")
    assert lab.swarm is not None and lab.docker is not None
    engines = docker.connect_each(
        lab.docker, lab.swarm.hosts or (lab.docker.host,), lab.timeouts, reuse={lab.docker.host: docker_client}
    )
    clients = NodeClients()
    clients.update(engines.clients)
    clients.unreachable.update(engines.unreachable)
    yield clients
    engines.close()


@pytest.fixture(scope="session")
def swarm_test_image(lab: LabConfig, swarm_node_clients: NodeClients, docker_test_image: str) -> str:
    """The test image on every Swarm node: a task can only start where its image is (no registry)."""
    from pytest_workshop.components.docker import ensure_test_image

    assert lab.docker is not None
    for client in swarm_node_clients.values():
        ensure_test_image(client, lab.docker)
    return docker_test_image


@pytest.fixture
def swarm_seen_from(swarm_node_clients: NodeClients) -> Any:
    """``swarm_seen_from(hostname)``: a fresh SwarmView as that node's engine sees it (None if its
    engine did not answer when the run started)."""
    from pytest_workshop.components.swarm import view

    def seen_from(hostname: str) -> SwarmView | None:
        client = swarm_node_clients.get(hostname)
        return view(client, seen_from=hostname) if client is not None else None

    return seen_from


@pytest.fixture
def swarm(lab: LabConfig, docker_client: Any) -> SwarmView:
    """Nodes, roles, states, the leader and the fault tolerance, as the [docker] host's manager sees them now."""
    from pytest_workshop.components import swarm as swarm_component

    _require(lab, "swarm")
    return swarm_component.view(docker_client, seen_from=lab.docker.host if lab.docker else "manager")


def _service_factory(lab: LabConfig, docker_client: Any, node_clients: NodeClients, run: Run) -> ServiceFactory:
    from pytest_workshop.components.swarm import ServiceFactory

    return ServiceFactory(
        docker_client,
        dict(node_clients),
        run.labels,
        run.name_prefix,
        lab.timeouts.converge,
        unreachable=node_clients.unreachable,
        join_guard=lambda: overlay_join_guard(lab.name, lab.timeouts.converge),
    )


@contextlib.contextmanager
def overlay_join_guard(lab_name: str, wait: float) -> Iterator[None]:
    """One service at a time starts its tasks on overlay networks, across this run's workers
    (ServiceFactory.create says why). A guard that cannot be had within ``wait`` is skipped: it
    only makes a dockerd stall less likely, and the checks' own bounds still judge the lab."""
    from pytest_workshop.faults.lock import lab_lock

    with contextlib.ExitStack() as held:
        with contextlib.suppress(WorkshopError):
            held.enter_context(lab_lock(lab_name, exclusive=True, timeout=wait, resource="overlay-join"))
        yield


@pytest.fixture
def swarm_services(
    lab: LabConfig, docker_client: Any, swarm_node_clients: NodeClients, workshop_run: Run
) -> Iterator[ServiceFactory]:
    """Create services (replicated or global), overlays, secrets and configs; all removed after the test."""
    factory = _service_factory(lab, docker_client, swarm_node_clients, workshop_run)
    yield from _cleaned(factory)


@pytest.fixture(scope="module")
def swarm_services_module(
    lab: LabConfig, docker_client: Any, swarm_node_clients: NodeClients, workshop_run: Run, deferred_cleanup: Any
) -> Iterator[ServiceFactory]:
    """Like swarm_services, shared by the checks of one module (for expensive set-ups); cleaned up
    in the background after the module (deferred_cleanup)."""
    factory = _service_factory(lab, docker_client, swarm_node_clients, workshop_run)
    yield from _cleaned_later(factory, deferred_cleanup)


@pytest.fixture
def swarm_overlay(swarm_services: ServiceFactory) -> Any:
    """An attachable overlay network with the run's label, removed after the test."""
    return swarm_services.overlay()


@pytest.fixture(scope="session")
def etcd(lab: LabConfig, workshop_run: Run, pytestconfig: pytest.Config) -> Iterator[EtcdClient]:
    """A synchronous etcd client over all configured endpoints, every call bounded."""
    from pytest_workshop.components import etcd as etcd_component

    _require(lab, "etcd")
    assert lab.etcd is not None
    yield from _swept_session_client(
        pytestconfig, lab, workshop_run, "etcd", etcd_component.connect(lab.etcd, lab.timeouts)
    )


@pytest.fixture
def etcd_cluster(etcd: EtcdClient) -> ClusterView:
    """Members, per-endpoint status, the leader and alarms, read when the test starts."""
    return etcd.cluster_view()


@pytest.fixture
def etcd_keyspace(etcd: EtcdClient, workshop_run: Run, request: pytest.FixtureRequest) -> Iterator[Keyspace]:
    """A key prefix private to this test (under the run's prefix); deleted afterwards."""
    from pytest_workshop.components.etcd import Keyspace

    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]
    space = Keyspace(etcd, f"{workshop_run.etcd_prefix}{name}/")
    yield space
    with _uninterrupted():
        try:
            space.cleanup()
        except WorkshopError:
            pass  # etcd went away during the test; the run's end-of-session sweep or the janitor removes it


@pytest.fixture
def lab_change(lab: LabConfig) -> Any:
    """``with lab_change("swarm-node-drained", node="node3"):`` — a change a check makes to the lab,
    journalled like a fault and undone by that scenario's restore (also after a killed run)."""
    from pytest_workshop.faults import journalled_change

    @contextlib.contextmanager
    def change(scenario: str, **data: Any) -> Iterator[None]:
        # a Ctrl-C during the restore leaves the entry journalled: the next run or `workshop fix` ends it
        with journalled_change(lab, scenario, data):
            yield

    return change


@pytest.fixture
def lab_service_state(lab: LabConfig) -> Any:
    """``state(component, name)`` -> "running", "stopped", "paused", or None where the lab cannot tell
    (no ``[lab] control``, or no such member): evidence for a hint, never a verdict of its own."""

    def state(component: str, name: str) -> str | None:
        if not lab.control:
            return None
        from pytest_workshop.faults import control_for

        try:
            member = control_for(lab).member(component, name)
            if member.is_paused():
                return "paused"
            return "running" if member.is_running() else "stopped"
        except Exception:
            return None  # the control cannot tell; the check's own evidence stands

    return state


@pytest.fixture(scope="session")
def lab_host(lab: LabConfig) -> Any:
    """A testinfra host for the lab machine: ``local://`` by default, or ``[lab] host = "ssh://..."``."""
    import testinfra

    return testinfra.get_host(lab.host)


@pytest.fixture(scope="module")
def start_early(request: pytest.FixtureRequest, lab: LabConfig) -> Any:
    """``start_early(fixture, component)``: set up a module-scoped fixture now, at the module's
    first check, when the lab has ``component`` and a check of this module needs it. Meant for
    fixtures that start an experiment in the background (``pytest_workshop.in_background``): its
    waits then overlap the module's other checks.

    Only when this process runs all of the module's checks (plugin/scheduling.py): otherwise the
    fixture is set up when a check first asks for it, as usual. A set-up that fails here fails
    again, with its own error, in the check that asks for it, never in the one running now."""
    from pytest_workshop.plugin.scheduling import modules_kept_together

    def start(fixture: str, component: str) -> None:
        if not lab.has(component) or not modules_kept_together(request.config):
            return
        needs = any(fixture in getattr(item, "fixturenames", ()) for item in request.session.items
                    if getattr(item, "module", None) is request.module)  # fmt: skip
        if needs:
            try:
                request.getfixturevalue(fixture)
            except Exception:
                pass  # pytest keeps the failure; the check that needs the fixture gets it

    return start


# How long a check that moves tasks waits for the modules that need them still: lab5 whole, busy.
PLACEMENT_WAIT_S = 180.0


@pytest.fixture(scope="module")
def swarm_placement_steady(lab: LabConfig) -> Iterator[None]:
    """For a module whose services must stay where Swarm put them (lab5's app): while it runs, no
    check of any worker or run drains a node (``swarm_placement_exclusive``). Shared: such modules
    run side by side. A lock file per lab (faults/lock.py); a crashed worker's is released by the
    kernel."""
    from pytest_workshop.faults.lock import lab_lock

    with lab_lock(lab.name, exclusive=False, timeout=PLACEMENT_WAIT_S, resource="swarm-placement"):
        yield


@pytest.fixture
def swarm_nodes_steady(lab: LabConfig) -> Iterator[None]:
    """For a check that judges the nodes' availability (LAB6-11, the Swarm is whole): held shared
    while it runs, so that no check of another worker drains a node meanwhile (LAB2-12 does, on
    purpose, for seconds: at -n 4 LAB6-11 once saw that node drained and failed a healthy lab)."""
    from pytest_workshop.faults.lock import lab_lock

    with lab_lock(lab.name, exclusive=False, timeout=PLACEMENT_WAIT_S, resource="swarm-placement"):
        yield


@pytest.fixture
def swarm_placement_exclusive(lab: LabConfig) -> Any:
    """``with swarm_placement_exclusive():`` — wait until no module holds ``swarm_placement_steady``,
    and keep them out meanwhile: for a check that moves every task off a node (LAB2-12). Under
    -n 4 it waits for lab5 on another worker, so its check's bound allows for that."""
    from pytest_workshop.faults.lock import lab_lock

    return lambda: lab_lock(lab.name, exclusive=True, timeout=PLACEMENT_WAIT_S, resource="swarm-placement")


@pytest.fixture
def set_node_availability(docker_client: Any) -> Any:
    """``set_node_availability(hostname, "drain")``: `docker node update --availability`, retried
    when Swarm refuses an update made from a version read a moment earlier."""
    from pytest_workshop.components.swarm import set_availability

    return lambda hostname, availability: set_availability(docker_client, hostname, availability)
