"""The pytest plugin (entry point ``workshop``): options, markers, fixtures and hooks. Thin by design:
everything it does is a call into the library."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_workshop.config import LabConfig, resolve
from pytest_workshop.errors import ConfigError
from pytest_workshop.plugin import breakage, concurrency, fleet, reporting, selection
from pytest_workshop.plugin.breakage import fault
from pytest_workshop.plugin.catalogue import MARKERS, check_of
from pytest_workshop.plugin.checklist import ChecklistPlugin
from pytest_workshop.plugin.concurrency import (
    deferred_cleanup,
    pytest_xdist_make_scheduler,
    swarm_nodes_steady,
    swarm_placement_exclusive,
    swarm_placement_steady,
    workshop_experiments,
)
from pytest_workshop.plugin.fixtures import (
    docker_client,
    docker_resources,
    docker_test_image,
    etcd,
    etcd_cluster,
    etcd_keyspace,
    kernel_features,
    lab,
    lab_change,
    lab_host,
    lab_service_state,
    sample_app_recipe,
    set_node_availability,
    swarm,
    swarm_node_clients,
    swarm_overlay,
    swarm_seen_from,
    swarm_services,
    swarm_services_module,
    swarm_test_image,
    workshop_run,
)
from pytest_workshop.plugin.fixtures_app import app, app_for_experiments, app_image, app_on_kuryr
from pytest_workshop.plugin.fixtures_machines import lab_survey, workshop_ports
from pytest_workshop.plugin.fixtures_openstack import (
    devstack,
    kuryr_docker,
    kuryr_networks,
    kuryr_networks_module,
    kuryr_plugin,
    openstack,
    openstack_admin,
    openstack_admin_creating,
)
from pytest_workshop.plugin.state import LAB_KEY, RUN_KEY, is_worker
from pytest_workshop.plugin.verdict import VerdictPlugin
from pytest_workshop.run import Run, new_run_id

__all__ = [
    "app",
    "app_for_experiments",
    "app_image",
    "app_on_kuryr",
    "deferred_cleanup",
    "devstack",
    "docker_client",
    "docker_resources",
    "docker_test_image",
    "etcd",
    "etcd_cluster",
    "etcd_keyspace",
    "fault",
    "kernel_features",
    "kuryr_docker",
    "kuryr_networks",
    "kuryr_networks_module",
    "kuryr_plugin",
    "lab",
    "lab_change",
    "lab_host",
    "lab_service_state",
    "lab_survey",
    "openstack",
    "openstack_admin",
    "openstack_admin_creating",
    "pytest_xdist_make_scheduler",
    "sample_app_recipe",
    "set_node_availability",
    "swarm",
    "swarm_node_clients",
    "swarm_nodes_steady",
    "swarm_overlay",
    "swarm_placement_exclusive",
    "swarm_placement_steady",
    "swarm_seen_from",
    "swarm_services",
    "swarm_services_module",
    "swarm_test_image",
    "workshop_experiments",
    "workshop_ports",
    "workshop_run",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("workshop", "pytest-workshop: lab conformance")
    group.addoption(
        "--lab-config",
        metavar="PATH",
        help="lab.toml describing the lab (default: $WORKSHOP_LAB_CONFIG, ./lab.toml, then DOCKER_HOST/ETCDCTL_*/OS_CLOUD conventions)",
    )
    group.addoption(
        "--workshop-checks",
        action="store_true",
        help="list the check catalogue (ID, component, title) and exit without running anything",
    )
    fleet.add_options(group)
    selection.add_options(group)
    reporting.add_options(group)
    breakage.add_options(group)


@pytest.hookimpl(tryfirst=True)  # before allure-pytest's: it reads the results folder set here
def pytest_configure(config: pytest.Config) -> None:
    for marker in [*MARKERS, breakage.MARKER]:
        config.addinivalue_line("markers", marker)
    # openstacksdk announces its own future API changes on nearly every call; they are not the
    # attendee's business and would bury the checklist (hundreds per lab4 run).
    config.addinivalue_line("filterwarnings", "ignore::PendingDeprecationWarning:openstack")
    config.addinivalue_line("filterwarnings", "ignore::PendingDeprecationWarning:keystoneauth1")
    # Checks add notes with record_property; pytest warns that xunit2 has no per-test properties,
    # yet writes them (check_id, lab, component, notes) into the JUnit file all the same. The
    # warning only buries the checklist; the properties are what instructors' tools read.
    config.addinivalue_line(
        "filterwarnings", "ignore:record_property is incompatible with junit_family:pytest.PytestWarning"
    )
    try:
        labs = fleet.read(config)
        if labs is None:
            lab_config = resolve(config.option.lab_config, cwd=Path(config.invocation_params.dir))
        else:  # a shard may hold no lab: it checks none, never ./lab.toml instead
            lab_config = labs[0] if labs else LabConfig(name="", source="a shard with no lab")
    except ConfigError as e:
        raise pytest.UsageError(e.message) from None
    config.stash[LAB_KEY] = lab_config  # the lab; in a fleet run, the first (each item asks lab_of)
    if labs is not None:
        config.stash[fleet.LABS_KEY] = labs
        fleet.quiet_terminal(config)
        config.pluginmanager.register(fleet.FleetPlugin(labs), "workshop-fleet")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "workshop_run_id" in workerinput:
        run = Run(workerinput["workshop_run_id"])
    else:
        run = Run(new_run_id())
        run.register()
    config.stash[RUN_KEY] = run
    every_lab = fleet.labs_of(config)
    reporting.configure(config, every_lab)
    config.pluginmanager.register(selection.SelectionPlugin(config), "workshop-selection")
    config.pluginmanager.register(VerdictPlugin(fleet=labs is not None), "workshop-verdict")
    config.pluginmanager.register(breakage.BreakagePlugin(config, every_lab), "workshop-breakage")
    checklist = None
    if not is_worker(config):
        checklist_plugin = ChecklistPlugin(fleet=labs is not None)
        checklist = checklist_plugin.checklist
        config.pluginmanager.register(checklist_plugin, "workshop-checklist")
    config.pluginmanager.register(reporting.ReportingPlugin(config, every_lab, run, checklist), "workshop-reporting")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker of a run shares the controller's run id (one label, one sweep),
    and learns whether the scheduling keeps each module's checks in one worker."""
    node.workerinput["workshop_run_id"] = node.config.stash[RUN_KEY].run_id
    concurrency.configure_node(node)


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = f"workshop run: {config.stash[RUN_KEY].run_id}"
    if fleet.is_fleet(config):
        labs = fleet.labs_of(config)
        shard = f", shard {config.option.labs_shard}" if config.option.labs_shard else ""
        if not labs:
            return [
                f"fleet: shard {config.option.labs_shard} of {fleet.fleet_path(config)} holds no lab: nothing to run",
                run,
            ]
        return [
            f"fleet: {len(labs)} labs from {fleet.fleet_path(config)}{shard}: {', '.join(lab.name for lab in labs)}",
            run,
        ]
    lab = config.stash[LAB_KEY]
    lines = [*lab.describe(), run]
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > lab.parallel and not concurrency.dist_given(config):
        lines.append(f"parallel: {lab.parallel} suites at once ([lab] parallel), not -n {workers}")
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seen: dict[str, str] = {}
    for item in items:
        info = check_of(item)
        if info is None:
            continue
        if info.id in seen and seen[info.id] != item.nodeid.split("[")[0]:
            raise pytest.UsageError(f"check ID {info.id} is used twice: {seen[info.id]} and {item.nodeid}")
        seen[info.id] = item.nodeid.split("[")[0]
    if concurrency.modules_kept_together(config):
        concurrency.collectors_last(items, fleet.lab_of)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    if not session.config.option.workshop_checks:
        return None
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    checks = [info for info in (check_of(item) for item in session.items) if info is not None]
    if tr is not None:
        for line in catalogue_lines(checks):
            tr.write_line(line)
    return True


def catalogue_lines(checks: list[Any]) -> list[str]:
    """The checks by lab and guide step: ``3.1 A three-member cluster``, then its checks."""
    from pytest_workshop.guide import guides

    titles = {s.number: s.title for steps in guides().values() for s in steps}
    unique = {c.id: c for c in checks}
    lines = [""]
    for lab_title in sorted({c.lab_title for c in unique.values()}):
        lines.append(lab_title)
        in_lab = sorted((c for c in unique.values() if c.lab_title == lab_title), key=lambda c: (c.step or "", c.id))
        step = None
        for c in in_lab:
            if c.step != step:
                step = c.step
                lines.append(f"  {step or '-'}  {titles.get(step or '', '')}".rstrip())
            lines.append(f"      {c.id}  {c.component:<9} {c.title}")
    lines.append(f"{len(unique)} checks")
    return lines


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> Any:
    try:
        return (yield)
    finally:
        concurrency.release_pending(item)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if is_worker(config):
        return
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return
    if config.pluginmanager.hasplugin("dsession") and not config.option.workshop_checks:
        # Workers clean up after themselves; a crashed worker cannot, so the controller sweeps
        # everything carrying this run's label once all workers are gone.
        from concurrent.futures import ThreadPoolExecutor

        from pytest_workshop import janitor

        def sweep(lab: Any) -> None:
            from pytest_workshop.run import expect_leftovers

            try:
                if janitor.sweep(lab, only_run=run.run_id).errors:
                    expect_leftovers(run.run_id)
            except Exception:  # unreachable components were already reported as failed checks
                expect_leftovers(run.run_id)

        labs = fleet.labs_of(config)
        with ThreadPoolExecutor(max(1, min(16, len(labs)))) as pool:  # a dead lab's bounds delay no other
            list(pool.map(sweep, labs))
    run.unregister()
