"""The embedded lab's DevStack machine as a whole: check it can start, bring it up (its own engine,
the forwarder for Keystone and Neutron, then openstack_build's services), take it down again."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pytest_workshop.errors import LabError
from pytest_workshop.lab import machine_env, nodes, openstack_build, process
from pytest_workshop.lab import openstack as openstack_lab
from pytest_workshop.lab.settings import LabSettings
from pytest_workshop.lab.state import LabState, OpenStackEntry
from pytest_workshop.lab.status import alive

if TYPE_CHECKING:
    from pytest_workshop.lab.machines import LabMachines


def preflight(lab: LabMachines, settings: LabSettings) -> None:
    spec = openstack_lab.OpenStackSpec(str(lab.state_dir / "openstack"), settings.keystone_port, settings.neutron_port)
    busy = openstack_lab.ports_in_use(spec)
    if busy:
        raise LabError(
            f"port(s) {', '.join(map(str, busy))} on 127.0.0.1 are already in use (a real DevStack, or another lab?)",
            hint="stop that, or pick others with --keystone-port / --neutron-port",
        )
    machine = openstack_lab.machine_spec(lab.state_dir, settings.prefix, settings.segment)
    if nodes.netns_exists(machine.netns):
        raise LabError(f"network namespace {machine.netns} already exists", hint="run `workshop lab down` first")


def up_guarded(lab: LabMachines, settings: LabSettings) -> dict[str, Any]:
    """Add OpenStack to a running lab; on failure only the OpenStack part is removed."""
    preflight(lab, settings)
    try:
        return up(lab, settings)
    except BaseException as e:
        lab.keep_logs()
        state = lab.load()
        if state is not None:
            down(state)
        raise lab.pointing_at_kept_logs(e) from None


def up(lab: LabMachines, settings: LabSettings) -> dict[str, Any]:
    t0 = time.monotonic()
    machine = openstack_lab.machine_spec(lab.state_dir, settings.prefix, settings.segment)
    spec = openstack_lab.OpenStackSpec(str(lab.state_dir / "openstack"), settings.keystone_port, settings.neutron_port)
    with lab.state.edit() as data:
        data.openstack = OpenStackEntry(machine, spec)
        data.namespaces = [*data.namespaces, machine.netns]
        data.settings = replace(
            data.settings, openstack=True, keystone_port=settings.keystone_port, neutron_port=settings.neutron_port
        )
    openstack_lab.write_configs(spec, machine, openstack_lab.new_passwords())
    nodes.attach(settings.prefix, machine.netns, machine.switch_port, machine.address, settings.segment)
    current = lab.current()
    from pytest_workshop.components.docker import fixtures_dir

    # the openstack CLI (the services' virtualenv has it) with the lab's clouds.yaml, as on DevStack
    cli = {"PATH": f"{spec.venv}/bin:$PATH", "OS_CLOUD": "devstack", "OS_CLIENT_CONFIG_FILE": str(spec.clouds_yaml)}
    machine_env.write([machine], current.node_specs, current.etcd_specs, fixtures_dir(), settings.test_image, cli)
    init = nodes.boot(machine)
    lab.set_record("openstack", "init", init)
    lab.set_record("openstack", "dockerd", nodes.start_dockerd(machine, init))
    argv = [
        sys.executable,
        "-m",
        "pytest_workshop.lab.forwarder",
        "--netns",
        machine.netns,
        *(f"127.0.0.1:{p}=127.0.0.1:{p}" for p in (spec.keystone_port, spec.neutron_port)),
    ]
    lab.set_record(
        "openstack",
        "forwarder",
        process.spawn("openstack-forwarder", argv, lab.state_dir / "logs" / "openstack-forwarder.log"),
    )

    def died() -> str | None:
        entry = lab.current().openstack_entry()
        names: list[str] = ["init", "forwarder", *entry.processes]
        return next((n for n in names if (r := entry.processes.get(n)) and not alive(r)), None)

    builder = openstack_build.Builder(spec, machine, init, lambda n, r: lab.set_record("openstack", n, r), died)
    timings: dict[str, Any] = builder.build()
    # the engine kuryr serves gets the suites' image too (no registry: copied from node1)
    engines = lab.wait_engines([*lab.node_specs()[:1], machine])
    blob = b"".join(engines[0].images.get(settings.test_image).save(named=True))
    engines[1].images.load(blob)
    for c in engines:
        c.close()
    timings["seconds"] = round(time.monotonic() - t0, 2)
    with lab.state.edit() as data:
        data.openstack_entry().complete = True
    return timings


def down(data: LabState) -> list[str]:
    if data.openstack is None:
        return []
    done = []
    machine, spec = data.openstack.machine, data.openstack.spec
    done += nodes.power_off(machine, data.record("openstack", "init"))
    forwarder = data.record("openstack", "forwarder")
    if forwarder and process.stop(forwarder, grace=3):
        done.append(f"stopped openstack forwarder (pid {forwarder.pid})")
    if nodes.delete_netns(machine.netns):
        done.append(f"removed network namespace {machine.netns}")
    done += [f"removed cgroup {c}" for c in nodes.remove_cgroups(machine)]
    openstack_lab.remove_state(spec)
    shutil.rmtree(machine.dir, ignore_errors=True)
    return done
