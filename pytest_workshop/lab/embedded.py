"""`workshop lab up | down | status`: N lab machines with Docker engines in a Swarm, and an etcd cluster.

Everything `up` starts is recorded in ``<dir>/state.json`` before it starts, so `down` (and a
later `up` after a crash) stops exactly that and removes every namespace, cgroup and file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from pytest_workshop.components.waiting import wait_for
from pytest_workshop.errors import LabError
from pytest_workshop.lab import certs, devstack_machine, engine_setup, etcd_cluster, machine_env, nodes, process, ssh
from pytest_workshop.lab import openstack as openstack_lab
from pytest_workshop.lab.control import MemberControl
from pytest_workshop.lab.lab_toml import WRITTEN_MARK, lab_toml_text
from pytest_workshop.lab.members import DockerEngineMember, EtcdMember, NodeMember, OpenStackServiceMember
from pytest_workshop.lab.process import ProcessRecord
from pytest_workshop.lab.settings import REQUIRED, LabSettings
from pytest_workshop.lab.state import EtcdEntry, LabState, NodeEntry, StateFile
from pytest_workshop.lab.status import alive, lab_status

DEFAULT_STATE_DIR = Path(os.environ.get("WORKSHOP_LAB_DIR", "/var/tmp/workshop-lab"))


class EmbeddedLab:
    """The lab described by a state directory. Library API; the CLI is a thin shell over it."""

    def __init__(self, state_dir: Path = DEFAULT_STATE_DIR) -> None:
        self.state_dir = Path(state_dir)
        self.state = StateFile(self.state_dir / "state.json")

    # --- queries --------------------------------------------------------------------------
    def load(self) -> LabState | None:
        """The lab's state, or None when nothing is recorded (a lab that is down)."""
        return self.state.load()

    def current(self) -> LabState:
        """The lab's state; a lab that is down is refused with the command that starts it."""
        state = self.load()
        if state is None:
            raise LabError(f"no lab is up in {self.state_dir}", hint="run `workshop lab up`")
        return state

    def node_specs(self, data: LabState | None = None) -> list[nodes.NodeSpec]:
        data = data or self.load()
        return data.node_specs if data else []

    def etcd_specs(self, data: LabState | None = None) -> list[etcd_cluster.MemberSpec]:
        data = data or self.load()
        return data.etcd_specs if data else []

    def record(self, kind: str, name: str, data: LabState | None = None) -> ProcessRecord | None:
        """The process record of a node's init ("init"), a node's dockerd ("dockerd"), an etcd
        member ("etcd"), the "forwarder", or an "openstack" process."""
        data = data or self.load()
        return data.record(kind, name) if data else None

    def set_record(self, kind: str, name: str, rec: ProcessRecord | None) -> None:
        with self.state.edit() as data:
            data.set_record(kind, name, rec)

    def processes(self) -> list[ProcessRecord]:
        data = self.load()
        return data.processes() if data else []

    def openstack_specs(self, data: LabState | None = None) -> tuple[nodes.NodeSpec, openstack_lab.OpenStackSpec]:
        entry = (data or self.current()).openstack_entry()
        return entry.machine, entry.spec

    def is_up(self) -> bool:
        data = self.load()
        if data is None or not data.complete:
            return False
        recs = data.processes()
        return bool(recs) and all(process.is_ours(r) for r in recs)

    # --- up -------------------------------------------------------------------------------
    @staticmethod
    def missing_binaries(with_openstack: bool = False) -> list[str]:
        found = [f"{path} (apt-get install {pkg})" for path, pkg in REQUIRED.items() if not Path(path).exists()]
        return found + (openstack_lab.missing() if with_openstack else [])

    def up(self, settings: LabSettings, config_path: Path) -> dict[str, Any]:
        """Start everything; returns timings. Idempotent: a running lab is reported, not restarted."""
        if os.geteuid() != 0:
            raise LabError("the embedded lab needs root (namespaces, dockerd)", hint="run it as root")
        settings.validate()
        missing = self.missing_binaries(settings.openstack)
        if missing:
            raise LabError(
                "missing: " + "; ".join(missing),
                hint="run scripts/install (it installs all of them), then `workshop lab up` again",
            )
        if self.is_up():
            result: dict[str, Any] = {"already_running": True}
            if settings.openstack and self.current().openstack is None:
                result = {"openstack": devstack_machine.up_guarded(self, settings)}
            self.write_config(config_path)
            return result
        if self.load():
            self.down()  # a crashed or half-stopped lab: clean it, then start fresh
        node_specs, etcd_specs = self._specs(settings)
        self._preflight(settings, etcd_specs)
        if settings.openstack:
            devstack_machine.preflight(self, settings)
        t0 = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state.save(
            LabState(
                name=settings.name,
                settings=settings,
                started=time.time(),
                namespaces=[f"{settings.prefix}-sw", f"{settings.prefix}-cl", *(n.netns for n in node_specs)],
                nodes=[NodeEntry(n) for n in node_specs],
                etcd_token=f"workshop-{secrets.token_hex(4)}",
                etcd=[EtcdEntry(m) for m in etcd_specs],
            )
        )
        try:
            timings = self._start(settings, node_specs, etcd_specs, t0)
        except BaseException as e:
            self.keep_logs()
            self.down()
            raise self.pointing_at_kept_logs(e) from None
        with self.state.edit() as done:
            done.complete = True
        self.write_config(config_path)
        timings["seconds"] = round(time.monotonic() - t0, 2)
        return timings

    def _specs(self, settings: LabSettings) -> tuple[list[nodes.NodeSpec], list[etcd_cluster.MemberSpec]]:
        """The machines and etcd members ``settings`` describe (and the TLS material they use)."""
        node_specs = nodes.node_specs(self.state_dir, settings.prefix, settings.nodes, settings.segment)
        tls_dir = self.state_dir / "tls"
        if settings.tls:  # one CA and one server certificate for every address a client may name
            names = ["localhost", *(n.name for n in node_specs)]
            certs.make_bundle(tls_dir, ["127.0.0.1", *(n.address for n in node_specs)], names)
        if settings.docker_tls_port:
            node_specs[0] = dataclasses.replace(node_specs[0], tls_dir=str(tls_dir))
        etcd_specs = etcd_cluster.member_specs(
            self.state_dir,
            node_specs,
            settings.etcd_members,
            settings.etcd_port_base,
            tls_dir=tls_dir if settings.etcd_tls else None,
        )
        return node_specs, etcd_specs

    def _start(
        self,
        settings: LabSettings,
        node_specs: list[nodes.NodeSpec],
        etcd_specs: list[etcd_cluster.MemberSpec],
        t0: float,
    ) -> dict[str, Any]:
        """Switch, machines, forwarder, etcd, engines, the test image, the Swarm, then OpenStack."""
        timings: dict[str, Any] = {}
        nodes.create_switch(settings.prefix)
        nodes.attach(
            settings.prefix, f"{settings.prefix}-cl", "cl", nodes.client_address(settings.segment), settings.segment
        )
        for spec in node_specs:
            nodes.attach(settings.prefix, spec.netns, spec.switch_port, spec.address, settings.segment)
            self.boot(spec)
        self._start_forwarder()
        from pytest_workshop.components.docker import fixtures_dir

        machine_env.write(node_specs, node_specs, etcd_specs, fixtures_dir(), settings.test_image)
        if not settings.bare:
            for member in etcd_specs:
                self.start_etcd(member)
                time.sleep(0.1)  # all at once, etcd 3.4 sometimes stalls ~1 s per peer probing
            etcd_cluster.wait_healthy(etcd_specs, 30, self._dead_etcd)
        timings["etcd_ready_s"] = round(time.monotonic() - t0, 2)
        clients = self.wait_engines(node_specs)
        timings["image"] = engine_setup.distribute_test_image(clients, settings)
        if settings.bare:
            engine_setup.distribute_app_image(clients)
        else:
            engine_setup.form_swarm(clients, node_specs, settings)
        for c in clients:
            c.close()
        timings["swarm_ready_s"] = round(time.monotonic() - t0, 2)
        if settings.openstack:
            timings["openstack"] = devstack_machine.up(self, settings)
        return timings

    def _preflight(self, settings: LabSettings, etcd_specs: list[etcd_cluster.MemberSpec]) -> None:
        busy = etcd_cluster.ports_in_use(etcd_specs)
        if busy:
            raise LabError(
                f"port(s) {', '.join(map(str, busy))} on 127.0.0.1 are already in use (another lab, or a system etcd?)",
                hint="stop that, or pick other ports with --etcd-port-base",
            )
        for ns in [f"{settings.prefix}-sw", f"{settings.prefix}-cl"]:
            if nodes.netns_exists(ns):
                raise LabError(
                    f"network namespace {ns} already exists (another lab?)",
                    hint="run `workshop lab down`, or use another --prefix",
                )
        pool = ipaddress.ip_network(settings.swarm_pool)
        if pool.overlaps(ipaddress.ip_network("127.0.0.0/8")):
            raise LabError(
                f"the Swarm address pool {pool} overlaps loopback", hint="choose a private range with --swarm-pool"
            )
        for net in nodes.host_routes():
            if pool.overlaps(net) and not net.is_loopback:
                raise LabError(
                    f"the Swarm address pool {pool} overlaps {net}, which this machine routes",
                    hint="choose a free range with --swarm-pool",
                )

    @property
    def failed_logs(self) -> Path:
        return self.state_dir.with_name(self.state_dir.name + ".failed-logs")

    def keep_logs(self) -> None:
        """A failed `up` removes everything it started; its logs are copied aside first, to read why."""
        shutil.rmtree(self.failed_logs, ignore_errors=True)
        for logs in [self.state_dir / "logs", self.state_dir / "openstack" / "logs"]:
            if logs.is_dir():
                shutil.copytree(logs, self.failed_logs / logs.relative_to(self.state_dir), dirs_exist_ok=True)
        for log in (self.state_dir / "nodes").glob("*/*.log"):
            target = self.failed_logs / log.relative_to(self.state_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(log, target)

    def pointing_at_kept_logs(self, e: BaseException) -> BaseException:
        if not isinstance(e, LabError):
            return e
        hint = e.hint.replace(str(self.state_dir), str(self.failed_logs)) if e.hint else f"read {self.failed_logs}"
        return LabError(e.message, hint=hint)

    def boot(self, spec: nodes.NodeSpec) -> None:
        init = nodes.boot(spec)
        self.set_record("init", spec.name, init)
        self.set_record("dockerd", spec.name, nodes.start_dockerd(spec, init))
        settings = self.current().settings
        if spec.index == 1 and settings.ssh_port:
            config = ssh.prepare(self.state_dir / "ssh", spec.socket)
            home = {ssh.alias(settings.prefix): (settings.ssh_port, self.state_dir / "ssh")}
            ssh.write_client_home(self.state_dir / "ssh" / "home", home)
            log = self.state_dir / "logs" / f"{spec.name}-sshd.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            # not recorded: it lives in the machine's pid namespace and dies with the machine
            nodes.nsenter(init, ssh.sshd_argv(config), log, f"{spec.name}-sshd")

    def start_etcd(self, member: etcd_cluster.MemberSpec) -> None:
        data = self.current()
        init = data.record("init", member.node)
        if init is None:
            raise LabError(f"{member.node} has no init", hint="run `workshop lab down` and up again")
        rec = etcd_cluster.start_member(member, data.etcd_specs, data.etcd_token, data.settings.etcd_quota_bytes, init)
        self.set_record("etcd", member.name, rec)

    def _start_forwarder(self) -> None:
        data = self.current()
        mappings = [f"127.0.0.1:{m.forwarded_port}={m.address}:{etcd_cluster.CLIENT_PORT}" for m in data.etcd_specs]
        if data.settings.docker_tls_port:
            mappings.append(f"127.0.0.1:{data.settings.docker_tls_port}={data.node_specs[0].address}:{nodes.TLS_PORT}")
        if data.settings.ssh_port:
            mappings.append(f"127.0.0.1:{data.settings.ssh_port}={data.node_specs[0].address}:{ssh.SSH_PORT}")
        argv = [
            sys.executable,
            "-m",
            "pytest_workshop.lab.forwarder",
            "--netns",
            f"{data.settings.prefix}-cl",
            *mappings,
        ]
        rec = process.spawn("forwarder", argv, self.state_dir / "logs" / "forwarder.log")
        self.set_record("forwarder", "", rec)

    def _dead_etcd(self) -> list[str]:
        data = self.current()
        return [m.name for m in data.etcd_specs if not alive(data.record("etcd", m.name))]

    def _engine_record(self, spec: nodes.NodeSpec) -> ProcessRecord | None:
        if spec.index == 0:
            return self.record("openstack", "dockerd")
        return self.record("dockerd", spec.name)

    def wait_engines(self, specs: list[nodes.NodeSpec], timeout: float = 30) -> list[Any]:
        from pytest_workshop.components import docker as docker_component
        from pytest_workshop.config import DockerConfig, Timeouts

        clients = []
        for spec in specs:

            def exited(spec: nodes.NodeSpec = spec) -> str | None:
                return None if alive(self._engine_record(spec)) else "it exited during start-up"

            def connect(spec: nodes.NodeSpec = spec) -> Any:
                return docker_component.connect(DockerConfig(host=spec.host), Timeouts(request=5))

            client = wait_for(
                f"dockerd on {spec.name} did not answer",
                connect,
                timeout,
                step=0.05,
                error=LabError,
                abort=exited,
                retry_on=(Exception,),
                observe=lambda: "",
                hint=f"read {spec.log}",
            )
            clients.append(client)
        return clients

    def write_config(self, path: Path) -> Path:
        """The lab.toml that describes this lab (lab/lab_toml.py); its path is remembered for `down`."""
        path = path.resolve()
        with self.state.edit() as data:
            path.write_text(lab_toml_text(self.state_dir, data))
            data.configs = sorted(set(data.configs) | {str(path)})
        return path

    # --- down -----------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop exactly what up started and remove its traces. Safe to repeat; never raises for leftovers."""
        data = self.load()
        if data is None:
            return []
        done: list[str] = devstack_machine.down(data)
        for node in data.nodes:
            done += nodes.power_off(node.spec, node.init)
        if data.forwarder and process.stop(data.forwarder, grace=3):
            done.append(f"stopped forwarder (pid {data.forwarder.pid})")
        for ns in data.namespaces:
            if nodes.delete_netns(ns):
                done.append(f"removed network namespace {ns}")
        for spec in data.node_specs:
            done += [f"removed cgroup {c}" for c in nodes.remove_cgroups(spec)]
        for cfg in data.configs:
            p = Path(cfg)
            if p.is_file() and p.read_text().startswith("# " + WRITTEN_MARK):
                p.unlink()
                done.append(f"removed {p}")
        if self.state_dir.exists():
            for sub in ("etcd", "nodes", "logs", "tls", "ssh"):
                shutil.rmtree(self.state_dir / sub, ignore_errors=True)
            self.state.remove()
            with contextlib.suppress(OSError):
                self.state_dir.rmdir()  # only if nothing else lives there
            done.append(f"removed {self.state_dir}")
        return done

    # --- a shell on a machine ----------------------------------------------------------------
    def shell_argv(self, machine: str, command: list[str] | None = None) -> list[str]:
        """What runs a shell (or ``command``) on ``machine`` (node1.., devstack), as logged in
        there: its network, mount, uts and pid namespaces, root's home, the machine's PATH."""
        data = self.current()
        specs = {s.name: s for s in data.node_specs}
        if data.openstack is not None:
            specs[data.openstack.machine.name] = data.openstack.machine
        if machine not in specs:
            raise LabError(f"no machine {machine!r} in this lab", hint=f"use one of {', '.join(specs)}")
        node = any(s.name == machine for s in data.node_specs)
        init = data.record("init", machine) if node else data.record("openstack", "init")
        if init is None or not process.is_ours(init):
            raise LabError(f"{machine} is not running", hint="start it: `workshop lab up`")
        env = ["env", "-i", "HOME=/root", f"HOSTNAME={machine}", "TERM=" + os.environ.get("TERM", "xterm"),
               "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]  # fmt: skip
        argv = command or ["bash", "-l"]
        return ["nsenter", "-t", str(init.pid), "-n", "-m", "-u", "-p", "--wd=/root", "--", *env, *argv]

    # --- status ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Machines, engines (and their Swarm roles), etcd members and OpenStack services, as they are."""
        return lab_status(self)

    # --- control layer --------------------------------------------------------------------
    def members(self, component: str) -> list[MemberControl]:
        data = self.load()
        if component == "etcd":
            return [EtcdMember(self, m.name) for m in self.etcd_specs(data)]
        if component == "docker":
            return [DockerEngineMember(self, n.name) for n in self.node_specs(data)]
        if component == "node":
            return [NodeMember(self, n.name) for n in self.node_specs(data)]
        if component == "openstack" and data and data.openstack:
            return [OpenStackServiceMember(self, n) for n in ("dockerd", *openstack_lab.SERVICES)]
        raise LabError(
            f"the embedded lab has no component {component!r}",
            hint="use node, docker, etcd, or openstack (after `workshop lab up --with openstack`)",
        )

    def member(self, component: str, name: str) -> MemberControl:
        for m in self.members(component):
            if m.name == name:
                return m
        raise LabError(f"no {component} member named {name!r}", hint="see `workshop lab status`")

    def node_spec(self, name: str) -> nodes.NodeSpec:
        for spec in self.node_specs():
            if spec.name == name:
                return spec
        raise LabError(f"no node named {name!r}", hint="see `workshop lab status`")
