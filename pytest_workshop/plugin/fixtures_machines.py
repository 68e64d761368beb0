"""Fixtures of the readiness suite (lab0): the lab's machines as their engines show them.

lab_survey      every machine ([swarm] hosts, else the [docker] host): docker info, its clock, the
                guide's images it lacked, its facts (components/machine_facts.py); ``paths()``
                probes the workshop's ports between them (session)
workshop_ports  the ports the lab's components need: Swarm's with a [swarm], etcd's with an [etcd]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from pytest_workshop.config.model import LabConfig
from pytest_workshop.errors import WorkshopError
from pytest_workshop.plugin.lifecycle import require, swept_session_client
from pytest_workshop.run import Run


@pytest.fixture(scope="session")
def lab_survey(lab: LabConfig, workshop_run: Run, pytestconfig: pytest.Config) -> Iterator[Any]:
    from pytest_workshop.components import docker
    from pytest_workshop.components.app_image import APP_IMAGE
    from pytest_workshop.components.machine_facts import NAME_LABEL, survey

    require(lab, "docker")
    assert lab.docker is not None
    with contextlib.ExitStack() as engines_open:
        engines, unreachable = {}, {}
        for host in lab.swarm_hosts:
            try:
                client = docker.connect(replace(lab.docker, host=host), lab.timeouts)
            except WorkshopError as e:
                unreachable[host] = e.message
                continue
            # every machine's engine swept of this run's containers afterwards, also after Ctrl-C
            swept = contextlib.contextmanager(swept_session_client)(pytestconfig, lab, workshop_run, "docker", client)
            engines[host] = engines_open.enter_context(swept)
        # the guide's images: the test image (labs 1, 2) and lab5's app where the attendee deploys
        # it (in reference mode the suite builds and deploys the app itself)
        attendee_app = lab.swarm and lab.etcd and lab.app.mode == "attendee"
        images = [docker.test_image_ref(lab.docker)] + ([APP_IMAGE] if attendee_app else [])
        yield survey(engines, unreachable, images, {**workshop_run.labels, NAME_LABEL: workshop_run.name_prefix})


@pytest.fixture(scope="session")
def workshop_ports(lab: LabConfig) -> tuple[Any, ...]:
    from pytest_workshop.components.machine_facts import WORKSHOP_PORTS

    return tuple(p for p in WORKSHOP_PORTS if lab.has(p.component))
