"""The lab.toml an embedded lab describes itself with: its engines, Swarm, etcd and (with
OpenStack) clouds.yaml and kuryr, its logs for evidence, and that breakage is allowed here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_workshop.config import render_lab_toml
from pytest_workshop.lab import ssh
from pytest_workshop.lab.settings import has_ip_vs
from pytest_workshop.lab.state import LabState

WRITTEN_MARK = "written by `workshop lab up`"


def lab_toml_text(state_dir: Path, data: LabState) -> str:
    node_specs = data.node_specs
    text = render_lab_toml(
        {
            "lab": {
                "name": data.name,
                "allow_breakage": True,
                "allow_solve": True,
                "control": f"embedded:{state_dir.resolve()}",
                # testinfra reads its ssh config from the URL (`ssh -F`); lab/ssh.py
                **(
                    {"host": f"{ssh_url(data)}?ssh_config={state_dir.resolve()}/ssh/home/.ssh/config"}
                    if data.settings.ssh_port
                    else {}
                ),
                "parallel": 4,  # suites at once on these 2 cores (README, "Running in parallel")
                "logs": component_logs(data),
            },
            "timeouts": {
                "connect": 2.0,
                "request": 5.0,
                "container_start": 30.0,
                "network_create": 15.0,
                "converge": 45.0,
                "check": 60.0,
            },
            "docker": docker_section(state_dir, data),
            "swarm": {
                "nodes": len(node_specs),
                "managers": data.settings.managers,
                # The kernel decides: without ip_vs the routing mesh cannot work here, and says so.
                "routing_mesh": has_ip_vs(),
                "hosts": [n.host for n in node_specs],
            },
            "etcd": etcd_section(state_dir, data),
            **app_section(data),
            **openstack_config(data),
        },
        header=f"{WRITTEN_MARK} for the lab in {state_dir}; removed by `workshop lab down`.\n"
        "The embedded lab is disposable, so breakage (lab6) is allowed here.",
    )
    return text


def ssh_url(data: LabState) -> str:
    """The first machine over SSH: its alias in the ssh home's config (lab/ssh.py), and the port,
    which must be in the URL (docker-py puts 22 there otherwise, and then ignores the config's)."""
    return f"ssh://root@{ssh.alias(data.settings.prefix)}:{data.settings.ssh_port}"


def etcd_section(state_dir: Path, data: LabState) -> dict[str, Any]:
    section: dict[str, Any] = {"endpoints": [m.forwarded_url for m in data.etcd_specs], "members": len(data.etcd_specs)}
    if data.settings.etcd_tls:  # etcdctl's --cacert, --cert, --key
        client = (state_dir / "tls" / "client").resolve()
        section |= {"cacert": str(client / "ca.pem"), "cert": str(client / "cert.pem"), "key": str(client / "key.pem")}
    return section


def app_section(data: LabState) -> dict[str, Any]:
    """lab5: the suite deploys the reference app; its containers reach etcd at the nodes' own
    addresses (over docker_gwbridge and the node's network), not at the host's forwarded ports.
    The reference app speaks plain HTTP to etcd, so a lab whose etcd requires TLS has no [app]."""
    if data.settings.etcd_tls:
        return {}
    endpoints = [m.client_url for m in data.etcd_specs]
    if data.settings.bare:  # the attendee deploys the stack of lab5's guide
        return {"app": {"mode": "attendee", "stack": "registry-demo", "etcd_endpoints": endpoints}}
    return {"app": {"mode": "reference", "etcd_endpoints": endpoints}}


def docker_section(state_dir: Path, data: LabState) -> dict[str, Any]:
    section: dict[str, Any] = {"host": data.node_specs[0].host}
    if data.settings.ssh_port:  # as the docker CLI reaches a remote engine: ssh + dial-stdio
        section = {"host": ssh_url(data)}
    if data.settings.docker_tls_port:  # reached as an attendee VM's engine is: TLS with client certificates
        section = {
            "host": f"tcp://127.0.0.1:{data.settings.docker_tls_port}",
            "tls_verify": True,
            "cert_path": str((state_dir / "tls" / "client").resolve()),
        }
    return {**section, "test_image": data.settings.test_image, "pull": False}


def component_logs(data: LabState) -> dict[str, list[str]]:
    """Log files per component, whose tails a failed check attaches as evidence."""
    engines = [n.log for n in data.node_specs]
    logs = {"docker": engines, "swarm": engines, "etcd": [m.log for m in data.etcd_specs]}
    if data.openstack:
        machine, spec = data.openstack.machine, data.openstack.spec
        names = ("keystone.log", "neutron-api.log", "ovn-controller.log", "ovn-northd.log", "ovsdb-server-sb.log")
        logs["openstack"] = [str(spec.path("logs", n)) for n in names]
        # kuryr.out: what kuryr prints outside its log (a traceback at start-up)
        logs["kuryr"] = [str(spec.path("logs", n)) for n in ("kuryr.log", "kuryr.out")] + [machine.log]
    return logs


def openstack_config(data: LabState) -> dict[str, Any]:
    if data.openstack is None:
        return {}
    machine, spec = data.openstack.machine, data.openstack.spec
    return {
        "openstack": {"cloud": "devstack", "admin_cloud": "devstack-admin", "clouds_yaml": str(spec.clouds_yaml)},
        # kuryr serves the DevStack machine's engine, not the Swarm nodes'
        "kuryr": {"docker_host": machine.host},
    }
