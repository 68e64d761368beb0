"""Fixtures of the OpenStack side: Keystone/Neutron connections, the DevStack view, kuryr.

openstack           openstacksdk Connection for the configured cloud, authenticated, calls bounded (session)
openstack_admin     the same for ``[openstack] admin_cloud`` (session; fails with a hint if there is none)
openstack_admin_creating  the admin cloud again, calls bounded by ``[timeouts] network_create`` (creating networks, subnets)
devstack            a fresh DevStackView: token, catalogue, Neutron extensions, agents and their liveness
kuryr_docker        docker-py client of the engine kuryr serves (``[kuryr] docker_host``, else [docker] host)
kuryr_plugin        a fresh KuryrProbe: kuryr's spec file as that engine's host sees it, and its activation answer
kuryr_networks      KuryrNetworkFactory: kuryr networks, containers on them, their Neutron objects; removed after
kuryr_networks_module  the same, shared by one module's checks
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import WorkshopError
from pytest_workshop.plugin.fixtures import service_state
from pytest_workshop.plugin.lifecycle import cleaned, cleaned_later, require, swept_session_client
from pytest_workshop.run import Run

if TYPE_CHECKING:
    from pytest_workshop.components.kuryr import KuryrNetworkFactory
    from pytest_workshop.components.kuryr_probe import KuryrProbe
    from pytest_workshop.components.openstack import DevStackView
    from pytest_workshop.components.service_log import Witness


def _redact_token(config: pytest.Config, conn: Any) -> None:
    """A Keystone token is a credential too: keep it out of every output, like the passwords."""
    from pytest_workshop.plugin.reporting import REDACT_KEY

    redact = config.stash.get(REDACT_KEY, None)
    if redact is not None and conn.auth_token:
        redact.add(conn.auth_token)


@pytest.fixture(scope="session")
def openstack(lab: LabConfig, pytestconfig: pytest.Config) -> Iterator[Any]:
    """An authenticated openstacksdk Connection for ``[openstack] cloud``; every call bounded by
    ``[timeouts] request``. Keystone down or credentials rejected: a one-line error naming it."""
    from pytest_workshop.components import openstack as openstack_component

    require(lab, "openstack")
    assert lab.openstack is not None
    conn = openstack_component.connect(lab.openstack, lab.timeouts)
    _redact_token(pytestconfig, conn)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def openstack_admin(lab: LabConfig, workshop_run: Run, pytestconfig: pytest.Config) -> Iterator[Any]:
    """A Connection for ``[openstack] admin_cloud`` (DevStack: devstack-admin)."""
    from pytest_workshop.components import openstack as openstack_component

    require(lab, "openstack")
    assert lab.openstack is not None
    if not lab.openstack.admin_cloud:
        raise WorkshopError(
            f"this check needs an admin cloud and {lab.source} names none",
            hint='add admin_cloud = "devstack-admin" to [openstack] in lab.toml',
        )
    conn = openstack_component.connect(lab.openstack, lab.timeouts, admin=True)
    _redact_token(pytestconfig, conn)
    yield from swept_session_client(pytestconfig, lab, workshop_run, "openstack", conn)


@pytest.fixture(scope="session")
def openstack_admin_creating(lab: LabConfig, openstack_admin: Any, pytestconfig: pytest.Config) -> Iterator[Any]:
    """The admin cloud again, for creating Neutron networks and subnets: its calls are bounded by
    ``[timeouts] network_create``, not ``request`` (ML2/OVN creates a subnet's metadata port and
    namespace in the same call)."""
    from pytest_workshop.components import openstack as openstack_component

    assert lab.openstack is not None
    conn = openstack_component.connect(lab.openstack, lab.timeouts, admin=True, bound="network_create")
    _redact_token(pytestconfig, conn)
    yield conn
    conn.close()


@pytest.fixture
def devstack(lab: LabConfig, openstack: Any, openstack_admin: Any) -> DevStackView:
    """Token, catalogue, Neutron extensions and agents, read when the test starts."""
    from pytest_workshop.components import openstack as openstack_component

    assert lab.openstack is not None
    return openstack_component.view(openstack, lab.openstack, openstack_admin)


@pytest.fixture(scope="session")
def kuryr_docker(lab: LabConfig, workshop_run: Run, pytestconfig: pytest.Config) -> Iterator[Any]:
    """The engine kuryr is the network and IPAM driver of."""
    from pytest_workshop.components import docker
    from pytest_workshop.config import DockerConfig

    require(lab, "kuryr")
    assert lab.kuryr is not None
    base = lab.docker or DockerConfig()
    host = lab.kuryr.docker_host or base.host
    if lab.docker is not None and host == lab.docker.host:
        client = docker.connect(lab.docker, lab.timeouts)
    else:
        client = docker.connect(replace(base, host=host), lab.timeouts)
    docker.ensure_test_image(client, replace(base, host=host))
    # the engine differs from [docker] host: sweep it like the session's docker client
    yield from swept_session_client(
        pytestconfig, replace(lab, docker=replace(base, host=host)), workshop_run, "docker", client
    )


def _test_image(lab: LabConfig) -> str:
    from pytest_workshop.components.docker import OWN_TEST_IMAGE

    return (lab.docker.test_image if lab.docker else None) or OWN_TEST_IMAGE


@pytest.fixture
def kuryr_plugin(lab: LabConfig, kuryr_docker: Any, workshop_run: Run) -> KuryrProbe:
    """Probed afresh for each check: a check after a fault must see kuryr as it is now."""
    from pytest_workshop.components.kuryr_probe import probe

    found = probe(
        kuryr_docker, _test_image(lab), workshop_run.labels, f"{workshop_run.name_prefix}kprobe-{secrets.token_hex(3)}"
    )
    return replace(found, witness=kuryr_witness(lab))


def kuryr_witness(lab: LabConfig) -> Witness:
    """kuryr as the lab's control and kuryr's own log ([lab.logs] kuryr) see it."""
    from pytest_workshop.components.service_log import Witness

    return Witness("openstack", "kuryr", functools.partial(service_state, lab), lab.logs.get("kuryr", ()))


def _kuryr_factory(
    lab: LabConfig, kuryr_docker: Any, openstack_admin: Any, creating: Any, run: Run
) -> KuryrNetworkFactory:
    from pytest_workshop.components.kuryr import KuryrNetworkFactory

    assert lab.kuryr is not None
    return KuryrNetworkFactory(
        kuryr_docker,
        openstack_admin,
        run.labels,
        run.name_prefix,
        run.run_id,
        _test_image(lab),
        lab.kuryr.network_driver,
        lab.kuryr.ipam_driver,
        lab.timeouts,
        neutron_creating=creating,
        witness=kuryr_witness(lab),
    )


@pytest.fixture
def kuryr_networks(
    lab: LabConfig, kuryr_docker: Any, openstack_admin: Any, openstack_admin_creating: Any, workshop_run: Run
) -> Iterator[KuryrNetworkFactory]:
    """Kuryr networks and containers on them, with their Neutron objects; all removed after the test."""
    factory = _kuryr_factory(lab, kuryr_docker, openstack_admin, openstack_admin_creating, workshop_run)
    yield from cleaned(factory)


@pytest.fixture(scope="module")
def kuryr_networks_module(
    lab: LabConfig,
    kuryr_docker: Any,
    openstack_admin: Any,
    openstack_admin_creating: Any,
    workshop_run: Run,
    deferred_cleanup: Any,
) -> Iterator[KuryrNetworkFactory]:
    """Like kuryr_networks, shared by the checks of one module (a network with two containers is
    set up once); cleaned up in the background after the module (deferred_cleanup)."""
    factory = _kuryr_factory(lab, kuryr_docker, openstack_admin, openstack_admin_creating, workshop_run)
    yield from cleaned_later(factory, deferred_cleanup)
