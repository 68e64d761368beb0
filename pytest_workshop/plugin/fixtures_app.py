"""Fixtures of lab5's microservices ([app] in lab.toml).

app_image   the reference app's image on every Swarm node, built offline once per engine (session)
app_on_kuryr  an experiment (a Task): the reference app as containers on a kuryr network on the engine
            kuryr serves, deployed in either mode (per module; removed with the kuryr network)
app_for_experiments  a Task: the deployment lab5's experiments change (reference mode: a second one)
app         the deployment the checks look at (components.microservices.AppDeployment), per module:
            - reference mode: the reference app deployed here from fixtures/apps/registry-demo/stack.yml
              under a stack name of this run's, labelled with the run and removed after the module's
              last check that uses it (and by the janitor after a crash);
            - attendee mode: the stack the attendee deployed ([app] stack); not deployed, every check
              fails with the deploy command as the hint. What the experiments change (replicas, the
              backend's environment) is put back after the module.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import CheckFailed, WorkshopError
from pytest_workshop.plugin.concurrency import Task, experiment, modules_kept_together, release_after_last_user

if TYPE_CHECKING:
    from pytest_workshop.components.kuryr_app import KuryrApp
    from pytest_workshop.components.microservices import AppDeployment
    from pytest_workshop.components.swarm_services import ServiceFactory

QUIET_AFTER_REMOVAL_S = 0.3  # no registration came back for this long: none is on its way
# Reference mode's second deployment, for the experiments that change it: deployed in 3-4 s (15 s
# busy); enough backends for one to be updated or killed while the other serves.
SECOND_DEPLOYMENT_BOUND_S = 60.0
SECOND_DEPLOYMENT_BACKENDS = 2
KURYR_DEPLOYMENT_BOUND_S = 120.0


@pytest.fixture(scope="session")
def app_image(lab: LabConfig, swarm_node_clients: Any) -> str:
    """The reference app's image on every node (no registry: a task starts only where its image is)."""
    from pytest_workshop.components.microservices import APP_IMAGE, ensure_app_image

    if swarm_node_clients.unreachable:
        silent = "; ".join(f"{h}: {why}" for h, why in swarm_node_clients.unreachable.items())
        raise WorkshopError(
            f"the app's image cannot be built on engines that do not answer ({silent})",
            hint="start those nodes' Docker engines",
        )
    # one engine per thread: building is mostly the engine's work (2-3 s each)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(swarm_node_clients) or 1) as pool:
        list(pool.map(ensure_app_image, swarm_node_clients.values()))
    return APP_IMAGE


def app_etcd_endpoints(lab: LabConfig) -> tuple[str, ...]:
    """Where the reference app's containers reach etcd: [app] etcd_endpoints, else [etcd] endpoints
    unless those are loopback (inside a container, 127.0.0.1 is the container)."""
    if lab.app.etcd_endpoints:
        return lab.app.etcd_endpoints
    assert lab.etcd is not None
    if any("//127." in e or "//localhost" in e for e in lab.etcd.endpoints):
        raise WorkshopError(
            f"{lab.source}: the reference app needs etcd endpoints its containers can reach; "
            f"[etcd] endpoints are loopback ({', '.join(lab.etcd.endpoints)})",
            hint='set [app] etcd_endpoints = ["http://NODE1:2379", ...] (the lab machines\' own addresses)',
        )
    return lab.etcd.endpoints


def deploy_reference(
    lab: LabConfig, factory: ServiceFactory, image: str, name: str = "app", backends: int | None = None
) -> AppDeployment:
    """The reference stack under a stack name of this run's (``factory.name(name)``); ``backends``
    replaces the stack file's backend replicas (a smaller second deployment for experiments)."""
    import dataclasses

    from pytest_workshop.components import microservices

    endpoints = app_etcd_endpoints(lab)
    definition = microservices.read_stack(
        microservices.stack_file(), {"ETCD_ENDPOINTS": ",".join(endpoints), "APP_IMAGE": image}
    )
    if backends is not None:
        backend = definition.services[lab.app.backend]
        definition.services[lab.app.backend] = dataclasses.replace(backend, replicas=backends)
    stack = factory.name(name)
    services = microservices.deploy_stack(factory, stack, definition)
    for service in services.values():
        service.wait_converged()
    return microservices.AppDeployment(factory, stack, lab.app.backend, lab.app.frontend, lab.app.registry_prefix)


def undeploy_reference(deployment: AppDeployment, etcd: Any) -> None:
    """Kill its containers, remove its services, then delete its registrations.

    Killed first: a removed service's tasks are stopped gracefully, but dockerd waits 2 s before
    stopping a task on an overlay network (its gossip delay), then the backends deregister on
    their way out - 3 s at the end of every lab5 run, for a way out that LAB5-11 checks, not the
    clean-up. The killed backends leave their entries: deleted here (they would linger for a
    lease's TTL, and another run's LAB5-06 would wait for them). Best effort: the factory removes
    what is left, the leases expire anyway."""
    import time

    def kill(service: Any, task: Any) -> None:
        try:
            service.container_on(task).kill()
        except Exception:
            pass  # gone already, or its engine does not answer: the service's removal stops it

    try:
        tasks = [(service, task) for service in deployment.services.values() for task in service.running()]
    except Exception:
        tasks = []
    with concurrent.futures.ThreadPoolExecutor(max(1, min(8, len(tasks)))) as pool:
        for service, task in tasks:
            pool.submit(kill, service, task)
    for service in deployment.services.values():
        try:
            service.obj.remove()
        except Exception:
            pass  # removed already (the factory's clean-up runs beside this one), or the engine is gone
    try:
        # a put already on its way when its backend was killed (or from one the kill missed, which
        # deregisters as it stops): delete until nothing has come back for a moment
        quiet_since, deadline = time.monotonic(), time.monotonic() + 3
        while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET_AFTER_REMOVAL_S:
            if etcd.delete_prefix(deployment.prefix.encode()):
                quiet_since = time.monotonic()
            time.sleep(0.1)
    except Exception:
        pass


def attendee_deployment(lab: LabConfig, factory: ServiceFactory) -> AppDeployment:
    from pytest_workshop.components import microservices

    deployment = microservices.AppDeployment(
        factory, lab.app.stack, lab.app.backend, lab.app.frontend, lab.app.registry_prefix
    )
    missing = deployment.missing()
    if missing:
        raise CheckFailed(
            f"the app is not deployed: the Swarm has no {' and no '.join(missing)} (stack {lab.app.stack!r})",
            hint=f"deploy it: {microservices.deploy_command(lab.app.stack, lab.app.etcd_endpoints)} "
            "(suites/lab5/README.md); another stack name: [app] stack in lab.toml",
        )
    return deployment


@pytest.fixture(scope="module")
def app(
    lab: LabConfig,
    etcd: Any,
    swarm_services_module: ServiceFactory,
    swarm_placement_steady: None,
    deferred_cleanup: Any,
    request: pytest.FixtureRequest,
) -> Iterator[AppDeployment]:
    """The app's deployment: the reference one deployed for this module, or the attendee's. Its
    tasks stay where they are meanwhile (no other check drains a node: swarm_placement_steady)."""
    if lab.app.mode == "reference":
        image = request.getfixturevalue("app_image")
        deployment = deploy_reference(lab, swarm_services_module, image)
        # in the background, beside the other clean-ups: each is a second or more of waiting
        release = release_after_last_user(
            request,
            lambda: deferred_cleanup(lambda: undeploy_reference(deployment, etcd)),
            modules_kept_together(request.config),
        )
        yield deployment
        release()
    else:
        # the experiments scale and update the attendee's backend: put it back as it was
        deployment = attendee_deployment(lab, swarm_services_module)
        before = deployment.backend_state()
        yield deployment
        deployment.restore_backend(before)


@experiment(bound=KURYR_DEPLOYMENT_BOUND_S, requires="kuryr", title="app's deployment on kuryr")
def app_on_kuryr(lab: LabConfig, kuryr_docker: Any, kuryr_networks_module: Any) -> KuryrApp:
    """The reference app as containers on a kuryr network (either mode): its registered addresses
    are Neutron ports'. Mostly waiting on kuryr, Neutron and OVN, so it overlaps the Swarm checks."""
    from pytest_workshop.components import microservices
    from pytest_workshop.components.kuryr_app import deploy_on_kuryr

    microservices.ensure_app_image(kuryr_docker)
    return deploy_on_kuryr(kuryr_networks_module, microservices.APP_IMAGE, app_etcd_endpoints(lab))


@pytest.fixture(scope="module")
def app_for_experiments(
    lab: LabConfig, etcd: Any, request: pytest.FixtureRequest, deferred_cleanup: Any
) -> Iterator[Task[AppDeployment]]:
    """The deployment lab5's experiments change, as a Task: in reference mode a second, smaller
    deployment of the reference app, deployed in the background (the experiments then run beside
    the checks that look at the first) and removed in the background after the last check that
    uses it; in attendee mode the attendee's own deployment (``app``): there is no other."""
    if lab.app.mode != "reference":
        attendee = request.getfixturevalue("app")
        yield Task("attendee's deployment", lambda: attendee, SECOND_DEPLOYMENT_BOUND_S)
        return
    request.getfixturevalue("swarm_placement_steady")  # its tasks stay where they are, as the first's
    factory, image = request.getfixturevalue("swarm_services_module"), request.getfixturevalue("app_image")
    second = Task(
        "second deployment",
        lambda: deploy_reference(lab, factory, image, "app2", SECOND_DEPLOYMENT_BACKENDS),
        SECOND_DEPLOYMENT_BOUND_S,
    )

    def remove() -> None:
        try:
            deployment = second.result()
        except Exception:
            return  # not deployed: the factory's clean-up removes whatever it made
        deferred_cleanup(lambda: undeploy_reference(deployment, etcd))

    release = release_after_last_user(request, remove, modules_kept_together(request.config))
    yield second
    release()
