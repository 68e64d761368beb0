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
lab_service_state   state(component, name): running/stopped/paused through the lab's control, or None;
                    state.path(name): the services of a request's path, read
lab_host            a testinfra host for the lab machine (``[lab] host``, local by default)
set_node_availability  set_node_availability(hostname, "drain"|"active"|"pause"): `docker node update --availability`

Locks (swarm_placement_*, swarm_nodes_steady), experiments and deferred_cleanup: plugin/concurrency/.

OpenStack and kuryr (openstack, openstack_admin, devstack, kuryr_*): plugin/fixtures_openstack.py
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import WorkshopError
from pytest_workshop.plugin.concurrency.locks import overlay_join_guard
from pytest_workshop.plugin.lifecycle import cleaned, cleaned_later, require, swept_session_client, uninterrupted
from pytest_workshop.plugin.state import LAB_KEY, RUN_KEY
from pytest_workshop.run import Run

if TYPE_CHECKING:
    from pytest_workshop.components.docker import DockerResources
    from pytest_workshop.components.etcd import ClusterView, EtcdClient, Keyspace
    from pytest_workshop.components.swarm import SwarmView
    from pytest_workshop.components.swarm_services import ServiceFactory


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

    require(lab, "docker")
    assert lab.docker is not None
    yield from swept_session_client(pytestconfig, lab, workshop_run, "docker", docker.connect(lab.docker, lab.timeouts))


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
    yield from cleaned(resources)


class NodeClients(dict[str, Any]):
    """hostname -> docker client; ``unreachable`` maps configured hosts that did not answer to why."""

    def __init__(self) -> None:
        super().__init__()
        self.unreachable: dict[str, str] = {}

    def ask_each(self) -> tuple[set[str], dict[str, str]]:
        """Ask every engine now: (the Swarm node IDs of those that answer, host -> why for those
        that do not, including the ones unreachable at the run's start). An error that is not the
        engine's (nor the way to it) is the suite's own and is raised."""
        from pytest_workshop.components.swarm import from_the_engine

        answering, silent = set(), dict(self.unreachable)
        for host, client in self.items():
            try:
                answering.add(client.info()["Swarm"].get("NodeID"))
            except Exception as e:
                if not from_the_engine(e):
                    raise
                silent[host] = " ".join(str(e).split())[:100]
        return answering, silent


@pytest.fixture(scope="session")
def swarm_node_clients(lab: LabConfig, docker_client: Any) -> Iterator[NodeClients]:
    """A client per node from ``[swarm] hosts`` (default: just the [docker] host)."""
    from pytest_workshop.components import docker

    require(lab, "swarm")
    assert lab.swarm is not None and lab.docker is not None
    engines = docker.connect_each(lab.docker, lab.swarm_hosts, lab.timeouts, reuse={lab.docker.host: docker_client})
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

    require(lab, "swarm")
    return swarm_component.view(docker_client, seen_from=lab.docker.host if lab.docker else "manager")


def _service_factory(lab: LabConfig, docker_client: Any, node_clients: NodeClients, run: Run) -> ServiceFactory:
    from pytest_workshop.components.swarm_services import ServiceFactory

    return ServiceFactory(
        docker_client,
        dict(node_clients),
        run.labels,
        run.name_prefix,
        lab.timeouts.converge,
        unreachable=node_clients.unreachable,
        join_guard=lambda: overlay_join_guard(lab.name, lab.timeouts.converge),
    )


@pytest.fixture
def swarm_services(
    lab: LabConfig, docker_client: Any, swarm_node_clients: NodeClients, workshop_run: Run
) -> Iterator[ServiceFactory]:
    """Create services (replicated or global), overlays, secrets and configs; all removed after the test."""
    factory = _service_factory(lab, docker_client, swarm_node_clients, workshop_run)
    yield from cleaned(factory)


@pytest.fixture(scope="module")
def swarm_services_module(
    lab: LabConfig, docker_client: Any, swarm_node_clients: NodeClients, workshop_run: Run, deferred_cleanup: Any
) -> Iterator[ServiceFactory]:
    """Like swarm_services, shared by the checks of one module (for expensive set-ups); cleaned up
    in the background after the module (deferred_cleanup)."""
    factory = _service_factory(lab, docker_client, swarm_node_clients, workshop_run)
    yield from cleaned_later(factory, deferred_cleanup)


@pytest.fixture
def swarm_overlay(swarm_services: ServiceFactory) -> Any:
    """An attachable overlay network with the run's label, removed after the test."""
    return swarm_services.overlay()


@pytest.fixture(scope="session")
def etcd(lab: LabConfig, workshop_run: Run, pytestconfig: pytest.Config) -> Iterator[EtcdClient]:
    """A synchronous etcd client over all configured endpoints, every call bounded."""
    from pytest_workshop.components import etcd as etcd_component

    require(lab, "etcd")
    assert lab.etcd is not None
    yield from swept_session_client(
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
    with uninterrupted():
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
    (no ``[lab] control``, or no such member): evidence for a hint, never a verdict of its own.
    ``state.path("port binding")``: every service on that path (components/service_path.py), read."""
    from pytest_workshop.components.service_path import read_path

    def state(component: str, name: str) -> str | None:
        return service_state(lab, component, name)

    state.path = lambda name: read_path(name, state)  # type: ignore[attr-defined]
    return state


def service_state(lab: LabConfig, component: str, name: str) -> str | None:
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


@pytest.fixture(scope="session")
def lab_host(lab: LabConfig) -> Any:
    """A testinfra host for the lab machine: ``local://`` by default, or ``[lab] host = "ssh://..."``."""
    import testinfra

    return testinfra.get_host(lab.host)


@pytest.fixture
def set_node_availability(docker_client: Any) -> Any:
    """``set_node_availability(hostname, "drain")``: `docker node update --availability`, retried
    when Swarm refuses an update made from a version read a moment earlier."""
    from pytest_workshop.components.swarm import set_availability

    return lambda hostname, availability: set_availability(docker_client, hostname, availability)
