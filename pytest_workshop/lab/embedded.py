"""`workshop lab up | down | status`: N lab machines with Docker engines in a Swarm, and an etcd cluster.

Everything `up` starts is recorded in ``<dir>/state.json`` before it starts, so `down` (and a
later `up` after a crash) stops exactly that and removes every namespace, cgroup and file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pytest_workshop.components.waiting import wait_for, wait_until
from pytest_workshop.config import render_lab_toml
from pytest_workshop.errors import LabError
from pytest_workshop.lab import etcd_cluster, nodes, openstack_build, process
from pytest_workshop.lab import openstack as openstack_lab
from pytest_workshop.lab.control import MemberControl
from pytest_workshop.lab.process import ProcessRecord
from pytest_workshop.lab.state import StateFile

DEFAULT_STATE_DIR = Path(os.environ.get("WORKSHOP_LAB_DIR", "/var/tmp/workshop-lab"))
WRITTEN_MARK = "written by `workshop lab up`"

# binary -> Debian package that provides it
REQUIRED = {
    "/usr/sbin/dockerd": "docker.io",
    "/usr/bin/containerd": "containerd (comes with docker.io)",
    "/usr/sbin/runc": "runc (comes with docker.io)",
    "/usr/bin/docker-init": "tini (comes with docker.io)",
    "/usr/bin/etcd": "etcd-server",
    "/bin/busybox": "busybox-static",
    "/usr/sbin/iptables": "iptables",
    "/usr/bin/nsenter": "util-linux",
    "/usr/bin/unshare": "util-linux",
}


@dataclass(frozen=True)
class LabSettings:
    name: str = "embedded"
    nodes: int = 3
    managers: int = 3
    etcd_members: int = 3
    etcd_port_base: int = 23790  # member i is reachable from the host on 127.0.0.1:<base + i>
    # small on purpose: the etcd-out-of-space exercise fills it in seconds (etcd's default is 2 GiB)
    etcd_quota_bytes: int | None = 64 * 1024 * 1024
    prefix: str = "wsl"  # names of the lab's network namespaces and cgroups
    segment: str = "10.251.0.0/24"  # the lab network (inside the lab's namespaces only)
    swarm_pool: str = "10.252.0.0/16"  # Swarm's default address pool for overlay networks
    test_image: str = "pytest-workshop/busybox:1.36"  # components.docker.OWN_TEST_IMAGE
    # `--with openstack`: the DevStack machine (Keystone, Neutron/OVN, kuryr) with its own engine
    openstack: bool = False
    keystone_port: int = 5000  # on 127.0.0.1 of the host and of the DevStack machine alike
    neutron_port: int = 9696

    def validate(self) -> None:
        if not 1 <= self.nodes <= 9:
            raise LabError(f"--nodes {self.nodes}: the lab runs 1 to 9 nodes", hint="use --nodes 3 or 5")
        if not 1 <= self.managers <= self.nodes:
            raise LabError(
                f"--managers {self.managers} with {self.nodes} nodes",
                hint="managers must be between 1 and the node count",
            )
        if not 1 <= self.etcd_members <= self.nodes:
            raise LabError(
                f"--etcd-members {self.etcd_members} with {self.nodes} nodes",
                hint="member i runs on node i: at most one per node",
            )
        if self.etcd_quota_bytes is not None and self.etcd_quota_bytes < 16 << 20:
            raise LabError(
                f"--etcd-quota-mib {self.etcd_quota_bytes >> 20}: etcd needs room for the lab's own keys",
                hint="use 16 MiB or more (default 64)",
            )
        if not self.prefix.isalnum() or len(self.prefix) > 8:
            raise LabError(f"--prefix {self.prefix!r}", hint="use up to 8 letters or digits")


def has_ip_vs() -> bool:
    from pytest_workshop.components.kernel import detect_local

    return detect_local().present["ip_vs"]


class EmbeddedLab:
    """The lab described by a state directory. Library API; the CLI is a thin shell over it."""

    def __init__(self, state_dir: Path = DEFAULT_STATE_DIR) -> None:
        self.state_dir = Path(state_dir)
        self.state = StateFile(self.state_dir / "state.json")

    # --- queries --------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        return self.state.load()

    def node_specs(self, data: dict[str, Any] | None = None) -> list[nodes.NodeSpec]:
        data = data if data is not None else self.load()
        return [nodes.NodeSpec(**n["spec"]) for n in data.get("nodes", [])]

    def etcd_specs(self, data: dict[str, Any] | None = None) -> list[etcd_cluster.MemberSpec]:
        data = data if data is not None else self.load()
        return [etcd_cluster.MemberSpec(**m["spec"]) for m in data.get("etcd", {}).get("members", [])]

    def record(self, kind: str, name: str, data: dict[str, Any] | None = None) -> ProcessRecord | None:
        """The process record of a node's init ("init"), a node's dockerd ("dockerd"), or an etcd member."""
        data = data if data is not None else self.load()
        if kind == "etcd":
            entries = data.get("etcd", {}).get("members", [])
            raw = next((m.get("process") for m in entries if m["spec"]["name"] == name), None)
        elif kind == "forwarder":
            raw = data.get("forwarder")
        elif kind == "openstack":
            raw = data.get("openstack", {}).get("processes", {}).get(name)
        else:
            raw = next((n.get(kind) for n in data.get("nodes", []) if n["spec"]["name"] == name), None)
        return ProcessRecord.from_json(raw) if raw else None

    def _set_record(self, kind: str, name: str, rec: ProcessRecord | None) -> None:
        data = self.load()
        value = rec.to_json() if rec else None
        if kind == "etcd":
            for m in data["etcd"]["members"]:
                if m["spec"]["name"] == name:
                    m["process"] = value
        elif kind == "forwarder":
            data["forwarder"] = value
        elif kind == "openstack":
            data["openstack"].setdefault("processes", {})[name] = value
        else:
            for n in data["nodes"]:
                if n["spec"]["name"] == name:
                    n[kind] = value
        self.state.save(data)

    def processes(self) -> list[ProcessRecord]:
        data = self.load()
        recs = [self.record(k, n.name, data) for n in self.node_specs(data) for k in ("init", "dockerd")]
        recs += [self.record("etcd", m.name, data) for m in self.etcd_specs(data)]
        recs.append(self.record("forwarder", "", data))
        if "openstack" in data:
            recs += [
                self.record("openstack", n, data) for n in ("init", "dockerd", "forwarder", *openstack_lab.SERVICES)
            ]
        return [r for r in recs if r is not None]

    def openstack_specs(self, data: dict[str, Any] | None = None) -> tuple[nodes.NodeSpec, openstack_lab.OpenStackSpec]:
        data = data if data is not None else self.load()
        if "openstack" not in data:
            raise LabError("this lab has no OpenStack", hint="run `workshop lab up --with openstack`")
        return nodes.NodeSpec(**data["openstack"]["machine"]), openstack_lab.OpenStackSpec(**data["openstack"]["spec"])

    def is_up(self) -> bool:
        data = self.load()
        if not data.get("complete"):
            return False
        recs = self.processes()
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
            if settings.openstack and "openstack" not in self.load():
                result = {"openstack": self._up_openstack_guarded(settings)}
            self.write_config(config_path)
            return result
        if self.load():
            self.down()  # a crashed or half-stopped lab: clean it, then start fresh
        node_specs = nodes.node_specs(self.state_dir, settings.prefix, settings.nodes, settings.segment)
        etcd_specs = etcd_cluster.member_specs(
            self.state_dir, node_specs, settings.etcd_members, settings.etcd_port_base
        )
        self._preflight(settings, etcd_specs)
        if settings.openstack:
            self._preflight_openstack(settings)
        t0 = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state.save({
            "name": settings.name,
            "settings": asdict(settings),
            "started": time.time(),
            "complete": False,
            "namespaces": [f"{settings.prefix}-sw", f"{settings.prefix}-cl", *(n.netns for n in node_specs)],
            "nodes": [{"spec": n.to_json()} for n in node_specs],
            "etcd": {"token": f"workshop-{secrets.token_hex(4)}", "members": [{"spec": m.to_json()} for m in etcd_specs]},
        })  # fmt: skip
        timings: dict[str, Any] = {}
        try:
            nodes.create_switch(settings.prefix)
            nodes.attach(
                settings.prefix, f"{settings.prefix}-cl", "cl", nodes.client_address(settings.segment), settings.segment
            )
            for spec in node_specs:
                nodes.attach(settings.prefix, spec.netns, spec.switch_port, spec.address, settings.segment)
                self._boot(spec)
            self._start_forwarder()
            for member in etcd_specs:
                self._start_etcd(member)
                time.sleep(0.1)  # all at once, 3.4 sometimes stalls ~1 s per peer probing (research)
            etcd_cluster.wait_healthy(etcd_specs, 30, self._dead_etcd)
            timings["etcd_ready_s"] = round(time.monotonic() - t0, 2)
            clients = self._wait_engines(node_specs)
            timings["image"] = self._distribute_test_image(clients, settings)
            self._form_swarm(clients, node_specs, settings)
            for c in clients:
                c.close()
            timings["swarm_ready_s"] = round(time.monotonic() - t0, 2)
            if settings.openstack:
                timings["openstack"] = self._up_openstack(settings)
        except BaseException as e:
            self.keep_logs()
            self.down()
            raise self._pointing_at_kept_logs(e) from None
        self.state.update(complete=True)
        self.write_config(config_path)
        timings["seconds"] = round(time.monotonic() - t0, 2)
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

    def _pointing_at_kept_logs(self, e: BaseException) -> BaseException:
        if not isinstance(e, LabError):
            return e
        hint = e.hint.replace(str(self.state_dir), str(self.failed_logs)) if e.hint else f"read {self.failed_logs}"
        return LabError(e.message, hint=hint)

    def _preflight_openstack(self, settings: LabSettings) -> None:
        spec = openstack_lab.OpenStackSpec(
            str(self.state_dir / "openstack"), settings.keystone_port, settings.neutron_port
        )
        busy = openstack_lab.ports_in_use(spec)
        if busy:
            raise LabError(
                f"port(s) {', '.join(map(str, busy))} on 127.0.0.1 are already in use (a real DevStack, or another lab?)",
                hint="stop that, or pick others with --keystone-port / --neutron-port",
            )
        machine = openstack_lab.machine_spec(self.state_dir, settings.prefix, settings.segment)
        if nodes.netns_exists(machine.netns):
            raise LabError(f"network namespace {machine.netns} already exists", hint="run `workshop lab down` first")

    def _up_openstack_guarded(self, settings: LabSettings) -> dict[str, Any]:
        """Add OpenStack to a running lab; on failure only the OpenStack part is removed."""
        self._preflight_openstack(settings)
        try:
            return self._up_openstack(settings)
        except BaseException as e:
            self.keep_logs()
            self._down_openstack(self.load())
            raise self._pointing_at_kept_logs(e) from None

    def _up_openstack(self, settings: LabSettings) -> dict[str, Any]:
        t0 = time.monotonic()
        machine = openstack_lab.machine_spec(self.state_dir, settings.prefix, settings.segment)
        spec = openstack_lab.OpenStackSpec(
            str(self.state_dir / "openstack"), settings.keystone_port, settings.neutron_port
        )
        data = self.load()
        data["openstack"] = {"machine": machine.to_json(), "spec": spec.to_json(), "processes": {}}
        data["namespaces"] = [*data.get("namespaces", []), machine.netns]
        data["settings"] = {**data["settings"], "openstack": True,
                            "keystone_port": settings.keystone_port, "neutron_port": settings.neutron_port}  # fmt: skip
        self.state.save(data)
        openstack_lab.write_configs(spec, machine, openstack_lab.new_passwords())
        nodes.attach(settings.prefix, machine.netns, machine.switch_port, machine.address, settings.segment)
        init = nodes.boot(machine)
        self._set_record("openstack", "init", init)
        self._set_record("openstack", "dockerd", nodes.start_dockerd(machine, init))
        argv = [sys.executable, "-m", "pytest_workshop.lab.forwarder", "--netns", machine.netns,
                *(f"127.0.0.1:{p}=127.0.0.1:{p}" for p in (spec.keystone_port, spec.neutron_port))]  # fmt: skip
        self._set_record("openstack", "forwarder", process.spawn("openstack-forwarder", argv, self.state_dir / "logs" / "openstack-forwarder.log"))  # fmt: skip

        def died() -> str | None:
            current = self.load()
            names: list[str] = ["init", "forwarder", *current["openstack"]["processes"]]
            return next((n for n in names if (r := self.record("openstack", n, current)) and not _alive(r)), None)

        builder = openstack_build.Builder(spec, machine, init, lambda n, r: self._set_record("openstack", n, r), died)
        timings: dict[str, Any] = builder.build()
        # the engine kuryr serves gets the suites' image too (no registry: copied from node1)
        engines = self._wait_engines([*self.node_specs()[:1], machine])
        blob = b"".join(engines[0].images.get(settings.test_image).save(named=True))
        engines[1].images.load(blob)
        for c in engines:
            c.close()
        timings["seconds"] = round(time.monotonic() - t0, 2)
        self.state.update(openstack={**self.load()["openstack"], "complete": True})
        return timings

    def _down_openstack(self, data: dict[str, Any]) -> list[str]:
        if "openstack" not in data:
            return []
        done = []
        machine, spec = self.openstack_specs(data)
        init = self.record("openstack", "init", data)
        if init and nodes.crash(machine, init):
            done.append(f"stopped {machine.name} (pid {init.pid} and everything in it)")
        else:
            nodes.thaw(machine)
        forwarder = self.record("openstack", "forwarder", data)
        if forwarder and process.stop(forwarder, grace=3):
            done.append(f"stopped openstack forwarder (pid {forwarder.pid})")
        if nodes.delete_netns(machine.netns):
            done.append(f"removed network namespace {machine.netns}")
        done += [f"removed cgroup {c}" for c in nodes.remove_cgroups(machine)]
        openstack_lab.remove_state(spec)
        shutil.rmtree(machine.dir, ignore_errors=True)
        return done

    def _boot(self, spec: nodes.NodeSpec) -> None:
        init = nodes.boot(spec)
        self._set_record("init", spec.name, init)
        self._set_record("dockerd", spec.name, nodes.start_dockerd(spec, init))

    def _start_etcd(self, member: etcd_cluster.MemberSpec) -> None:
        data = self.load()
        init = self.record("init", member.node, data)
        if init is None:
            raise LabError(f"{member.node} has no init", hint="run `workshop lab down` and up again")
        rec = etcd_cluster.start_member(
            member, self.etcd_specs(data), data["etcd"]["token"], data["settings"].get("etcd_quota_bytes"), init
        )
        self._set_record("etcd", member.name, rec)

    def _start_forwarder(self) -> None:
        data = self.load()
        mappings = [
            f"127.0.0.1:{m.forwarded_port}={m.address}:{etcd_cluster.CLIENT_PORT}" for m in self.etcd_specs(data)
        ]
        argv = [
            sys.executable,
            "-m",
            "pytest_workshop.lab.forwarder",
            "--netns",
            f"{data['settings']['prefix']}-cl",
            *mappings,
        ]
        rec = process.spawn("forwarder", argv, self.state_dir / "logs" / "forwarder.log")
        self._set_record("forwarder", "", rec)

    def _dead_etcd(self) -> list[str]:
        data = self.load()
        return [m.name for m in self.etcd_specs(data) if not _alive(self.record("etcd", m.name, data))]

    def _engine_record(self, spec: nodes.NodeSpec) -> ProcessRecord | None:
        if spec.index == 0:
            return self.record("openstack", "dockerd")
        return self.record("dockerd", spec.name)

    def _wait_engines(self, specs: list[nodes.NodeSpec], timeout: float = 30) -> list[Any]:
        from pytest_workshop.components import docker as docker_component
        from pytest_workshop.config import DockerConfig, Timeouts

        clients = []
        for spec in specs:

            def exited(spec: nodes.NodeSpec = spec) -> str | None:
                return None if _alive(self._engine_record(spec)) else "it exited during start-up"

            def connect(spec: nodes.NodeSpec = spec) -> Any:
                return docker_component.connect(DockerConfig(host=spec.host), Timeouts(request=5))

            client = wait_for(f"dockerd on {spec.name} did not answer", connect, timeout, step=0.05, error=LabError,
                              abort=exited, retry_on=(Exception,), observe=lambda: "", hint=f"read {spec.log}")  # fmt: skip
            clients.append(client)
        return clients

    @staticmethod
    def _distribute_test_image(clients: list[Any], settings: LabSettings) -> str:
        """Build once (offline) on the first node, `docker load` it on the others: same image ID everywhere."""
        from pytest_workshop.components import docker as docker_component
        from pytest_workshop.config import DockerConfig

        ref, how = docker_component.ensure_test_image(
            clients[0], DockerConfig(test_image=settings.test_image, pull=False)
        )
        if ref != settings.test_image:
            clients[0].images.get(ref).tag(settings.test_image)  # the lab's own engines: the name asked for
        if len(clients) > 1:
            blob = b"".join(clients[0].images.get(settings.test_image).save(named=True))
            for client in clients[1:]:
                client.images.load(blob)
        return how

    @staticmethod
    def _form_swarm(
        clients: list[Any], specs: list[nodes.NodeSpec], settings: LabSettings, timeout: float = 60
    ) -> None:
        first, first_spec = clients[0], specs[0]
        first.swarm.init(
            advertise_addr=first_spec.address,
            listen_addr=f"{first_spec.address}:2377",
            default_addr_pool=[settings.swarm_pool],
            subnet_size=24,
        )
        tokens = first.swarm.attrs["JoinTokens"]
        for i, (client, spec) in enumerate(zip(clients[1:], specs[1:], strict=True), start=2):
            token = tokens["Manager"] if i <= settings.managers else tokens["Worker"]
            client.swarm.join(
                remote_addrs=[f"{first_spec.address}:2377"],
                join_token=token,
                advertise_addr=spec.address,
                listen_addr=f"{spec.address}:2377",
            )

        def all_ready() -> bool:
            listed = first.nodes.list()
            return len(listed) == len(specs) and all(n.attrs["Status"]["State"] == "ready" for n in listed)

        wait_for(f"the swarm did not have {len(specs)} ready nodes", all_ready, timeout, error=LabError,
                 observe=lambda: "", hint="read the nodes' dockerd.log")  # fmt: skip

    def write_config(self, path: Path) -> Path:
        data = self.load()
        settings = data["settings"]
        node_specs = self.node_specs(data)
        text = render_lab_toml(
            {
                "lab": {
                    "name": data["name"],
                    "allow_breakage": True,
                    "control": f"embedded:{self.state_dir.resolve()}",
                    "logs": self._component_logs(data),
                },
                "timeouts": {"connect": 2.0, "request": 3.0, "check": 30.0, "converge": 30.0},
                "docker": {"host": node_specs[0].host, "test_image": settings["test_image"], "pull": False},
                "swarm": {
                    "nodes": len(node_specs),
                    "managers": settings["managers"],
                    # The kernel decides: without ip_vs the routing mesh cannot work here, and says so.
                    "routing_mesh": has_ip_vs(),
                    "hosts": [n.host for n in node_specs],
                },
                "etcd": {
                    "endpoints": [m.forwarded_url for m in self.etcd_specs(data)],
                    "members": len(self.etcd_specs(data)),
                },
                **self._openstack_config(data),
            },
            header=f"{WRITTEN_MARK} for the lab in {self.state_dir}; removed by `workshop lab down`.\n"
            "The embedded lab is disposable, so breakage (lab6) is allowed here.",
        )
        path = path.resolve()
        path.write_text(text)
        self.state.update(configs=sorted(set(data.get("configs", [])) | {str(path)}))
        return path

    def _component_logs(self, data: dict[str, Any]) -> dict[str, list[str]]:
        """Log files per component, whose tails a failed check attaches as evidence."""
        engines = [n.log for n in self.node_specs(data)]
        logs = {"docker": engines, "swarm": engines, "etcd": [m.log for m in self.etcd_specs(data)]}
        if "openstack" in data:
            machine, spec = self.openstack_specs(data)
            names = ("keystone.log", "neutron-api.log", "ovn-controller.log", "ovn-northd.log")
            logs["openstack"] = [str(spec.path("logs", n)) for n in names]
            logs["kuryr"] = [str(spec.path("logs", "kuryr.log")), machine.log]
        return logs

    def _openstack_config(self, data: dict[str, Any]) -> dict[str, Any]:
        if "openstack" not in data:
            return {}
        machine, spec = self.openstack_specs(data)
        return {
            "openstack": {"cloud": "devstack", "admin_cloud": "devstack-admin", "clouds_yaml": str(spec.clouds_yaml)},
            # kuryr serves the DevStack machine's engine, not the Swarm nodes'
            "kuryr": {"docker_host": machine.host},
        }

    # --- down -----------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop exactly what up started and remove its traces. Safe to repeat; never raises for leftovers."""
        data = self.load()
        done: list[str] = self._down_openstack(data)
        for spec in self.node_specs(data):
            init = self.record("init", spec.name, data)
            if init and nodes.crash(spec, init):
                done.append(f"stopped {spec.name} (pid {init.pid} and everything in it)")
            else:
                nodes.thaw(spec)
        forwarder = self.record("forwarder", "", data)
        if forwarder and process.stop(forwarder, grace=3):
            done.append(f"stopped forwarder (pid {forwarder.pid})")
        for ns in data.get("namespaces", []):
            if nodes.delete_netns(ns):
                done.append(f"removed network namespace {ns}")
        for spec in self.node_specs(data):
            done += [f"removed cgroup {c}" for c in nodes.remove_cgroups(spec)]
        for cfg in data.get("configs", []):
            p = Path(cfg)
            if p.is_file() and p.read_text().startswith("# " + WRITTEN_MARK):
                p.unlink()
                done.append(f"removed {p}")
        if data and self.state_dir.exists():
            for sub in ("etcd", "nodes", "logs"):
                shutil.rmtree(self.state_dir / sub, ignore_errors=True)
            self.state.remove()
            with contextlib.suppress(OSError):
                self.state_dir.rmdir()  # only if nothing else lives there
            done.append(f"removed {self.state_dir}")
        return done

    # --- status ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        data = self.load()
        if not data:
            return {"state": "down"}
        out: dict[str, Any] = {
            "state": "up" if self.is_up() else "degraded",
            "name": data["name"],
            "dir": str(self.state_dir),
        }
        swarm = self._swarm_view(self.node_specs(data))
        out["nodes"] = []
        for spec in self.node_specs(data):
            init, dockerd = self.record("init", spec.name, data), self.record("dockerd", spec.name, data)
            if not _alive(init):
                machine = "crashed"
            elif nodes.is_frozen(spec):
                machine = "frozen"
            elif nodes.is_partitioned(spec):
                machine = "partitioned"
            else:
                machine = "running"
            engine = (
                "stopped"
                if not _alive(dockerd)
                else ("paused" if dockerd and process.is_paused(dockerd) else self._docker_health(spec))
            )
            out["nodes"].append({
                "name": spec.name, "address": spec.address, "machine": machine, "docker": engine,
                "rss_mib": _node_rss(init), **swarm.get(spec.name, {"role": "?", "state": "unknown", "availability": "?", "leader": False}),
            })  # fmt: skip
        members = []
        for m in self.etcd_specs(data):
            rec = self.record("etcd", m.name, data)
            if not _alive(rec):
                health = "stopped"
            elif rec and process.is_paused(rec):
                health = "paused"
            elif etcd_cluster.is_partitioned(self.node_spec(m.node).netns):
                health = "partitioned"
            else:
                health = "healthy" if etcd_cluster.member_healthy(m) else "unhealthy"
            members.append(
                {
                    "name": m.name,
                    "node": m.node,
                    "endpoint": m.forwarded_url,
                    "health": health,
                    "pid": rec.pid if rec else None,
                }
            )
        out["etcd"] = members
        if "openstack" in data:
            out["openstack"] = self._openstack_status(data)
        out["configs"] = data.get("configs", [])
        return out

    def _openstack_status(self, data: dict[str, Any]) -> dict[str, Any]:
        machine, spec = self.openstack_specs(data)
        init = self.record("openstack", "init", data)
        services = []
        for name in ("dockerd", *openstack_lab.SERVICES):
            rec = self.record("openstack", name, data)
            if not _alive(rec):
                state = "stopped"
            elif rec and process.is_paused(rec):
                state = "paused"
            elif name == "dockerd":
                state = self._docker_health(machine)
            else:
                state = openstack_lab.service_health(spec, machine, name)
            services.append({"name": name, "state": state, "pid": rec.pid if rec else None})
        return {
            "machine": machine.name,
            "running": _alive(init),
            "docker": machine.host,
            "keystone": spec.keystone_url,
            "neutron": spec.neutron_url,
            "clouds_yaml": str(spec.clouds_yaml),
            "services": services,
            "rss_mib": _node_rss(init),
        }

    @staticmethod
    def _swarm_view(specs: list[nodes.NodeSpec]) -> dict[str, dict[str, Any]]:
        """Roles and states as any reachable manager sees them (a down manager cannot say)."""
        import docker

        for spec in specs:
            if not Path(spec.socket).exists():
                continue
            try:
                client = docker.DockerClient(base_url=spec.host, timeout=3)
                try:
                    listed = client.nodes.list()
                finally:
                    client.close()
            except Exception:
                continue
            view = {}
            for n in listed:
                manager = n.attrs.get("ManagerStatus") or {}
                view[n.attrs["Description"]["Hostname"]] = {
                    "role": n.attrs["Spec"]["Role"],
                    "availability": n.attrs["Spec"]["Availability"],
                    "state": n.attrs["Status"]["State"],
                    "leader": bool(manager.get("Leader")),
                }
            return view
        return {}

    @staticmethod
    def _docker_health(spec: nodes.NodeSpec, path: str = "/info") -> str:
        # Status asks /info, not /_ping: a restarted Swarm manager answers pings at once but blocks
        # /info (the first call every check makes) until it has caught up with the other managers.
        # Starting an engine waits for /_ping only: without quorum /info may never answer.
        from pytest_workshop.components import http

        answer = http.request(f"http://localhost{path}", 2.0, unix_socket=spec.socket)
        return "healthy" if answer.status == 200 else f"unhealthy ({answer.detail})"

    # --- control layer --------------------------------------------------------------------
    def members(self, component: str) -> list[MemberControl]:
        data = self.load()
        if component == "etcd":
            return [EtcdMember(self, m.name) for m in self.etcd_specs(data)]
        if component == "docker":
            return [DockerEngineMember(self, n.name) for n in self.node_specs(data)]
        if component == "node":
            return [NodeMember(self, n.name) for n in self.node_specs(data)]
        if component == "openstack" and "openstack" in data:
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


def _alive(rec: ProcessRecord | None) -> bool:
    return bool(rec and process.is_ours(rec))


def _node_rss(init: ProcessRecord | None) -> float:
    if not _alive(init) or init is None:
        return 0.0
    total = 0
    for pid in nodes.node_pids(init):
        total += process.rss_kib(ProcessRecord("", pid, ("",), 0, ""))
    return round(total / 1024, 1)


class NodeMember:
    """A whole lab machine: crash it (power loss), boot it, freeze it (hung), cut its cable."""

    component = "node"

    def __init__(self, lab: EmbeddedLab, name: str) -> None:
        self.lab, self.name = lab, name

    @property
    def spec(self) -> nodes.NodeSpec:
        return self.lab.node_spec(self.name)

    def is_running(self) -> bool:
        return _alive(self.lab.record("init", self.name))

    def is_paused(self) -> bool:
        return nodes.is_frozen(self.spec)

    def stop(self) -> None:
        self.kill()

    def kill(self) -> None:
        init = self.lab.record("init", self.name)
        if init:
            nodes.crash(self.spec, init)

    def start(self) -> None:
        """Boot: the engine starts (as systemd would start it) and so does the node's etcd member."""
        if self.is_running():
            return
        self.lab._boot(self.spec)
        for m in self.lab.etcd_specs():
            if m.node == self.name:
                self.lab._start_etcd(m)

    def pause(self) -> None:
        init = self.lab.record("init", self.name)
        if not _alive(init) or init is None:
            raise LabError(f"{self.name} is not running", hint="start it first")
        nodes.freeze(self.spec, init)

    def resume(self) -> None:
        nodes.thaw(self.spec)

    def partition(self) -> None:
        nodes.partition(self.spec)

    def heal(self) -> None:
        nodes.heal(self.spec)

    def is_partitioned(self) -> bool:
        return nodes.is_partitioned(self.spec)


class _ProcessMember:
    """A member that is one recorded process: the engine of a node, or an etcd member."""

    name: str

    def _rec(self) -> ProcessRecord | None:
        raise NotImplementedError

    def is_running(self) -> bool:
        return _alive(self._rec())

    def is_paused(self) -> bool:
        rec = self._rec()
        return bool(rec and _alive(rec) and process.is_paused(rec))

    def kill(self) -> None:
        rec = self._rec()
        if rec:
            process.kill(rec)

    def pause(self) -> None:
        rec = self._rec()
        if not rec or not process.signal_process(rec, signal.SIGSTOP):
            raise LabError(f"{self.name} is not running", hint="start it first")
        # SIGSTOP is delivered asynchronously: paused means stopped when this returns
        wait_until(self.is_paused, 2.0, step=0.01)

    def resume(self) -> None:
        rec = self._rec()
        if rec:
            process.signal_process(rec, signal.SIGCONT)


class DockerEngineMember(_ProcessMember):
    """One node's dockerd. Stopping it leaves the node (and its containers) running."""

    component = "docker"

    def __init__(self, lab: EmbeddedLab, node: str) -> None:
        self.lab, self.node, self.name = lab, node, node

    def _rec(self) -> ProcessRecord | None:
        return self.lab.record("dockerd", self.node)

    def stop(self) -> None:
        rec = self._rec()
        if rec:
            process.stop(rec, grace=15)

    def start(self) -> None:
        if self.is_running():
            return
        spec = self.lab.node_spec(self.node)
        init = self.lab.record("init", self.node)
        if not _alive(init) or init is None:
            raise LabError(
                f"{self.node} is down, so its engine cannot start",
                hint=f"boot the node: lab.member('node', '{self.node}').start()",
            )
        self.lab._set_record("dockerd", self.node, nodes.start_dockerd(spec, init))
        wait_for(f"dockerd on {self.node} did not come back", lambda: self.lab._docker_health(spec, "/_ping") == "healthy",
                 30, step=0.05, error=LabError, abort=lambda: None if self.is_running() else "it exited",
                 observe=lambda: "", hint=f"read {spec.log}")  # fmt: skip

    def partition(self) -> None:
        nodes.partition(self.lab.node_spec(self.node))

    def heal(self) -> None:
        nodes.heal(self.lab.node_spec(self.node))

    def is_partitioned(self) -> bool:
        return nodes.is_partitioned(self.lab.node_spec(self.node))


class EtcdMember(_ProcessMember):
    """One etcd member (on its node)."""

    component = "etcd"

    def __init__(self, lab: EmbeddedLab, name: str) -> None:
        self.lab, self.name = lab, name

    @property
    def spec(self) -> etcd_cluster.MemberSpec:
        for m in self.lab.etcd_specs():
            if m.name == self.name:
                return m
        raise LabError(f"no etcd member {self.name}")

    def _rec(self) -> ProcessRecord | None:
        return self.lab.record("etcd", self.name)

    def stop(self) -> None:
        rec = self._rec()
        if rec:
            process.stop(rec, grace=5)

    def start(self) -> None:
        if not self.is_running():
            self.lab._start_etcd(self.spec)

    def partition(self) -> None:
        etcd_cluster.partition(self.lab.node_spec(self.spec.node).netns)

    def heal(self) -> None:
        etcd_cluster.heal(self.lab.node_spec(self.spec.node).netns)

    def is_partitioned(self) -> bool:
        return etcd_cluster.is_partitioned(self.lab.node_spec(self.spec.node).netns)


class OpenStackServiceMember(_ProcessMember):
    """One service of the DevStack machine (keystone, neutron-api, kuryr, ovn-controller, ...) or
    its Docker engine ("dockerd"). Partitioning applies to the whole machine."""

    component = "openstack"

    def __init__(self, lab: EmbeddedLab, name: str) -> None:
        self.lab, self.name = lab, name

    def _rec(self) -> ProcessRecord | None:
        return self.lab.record("openstack", self.name)

    def stop(self) -> None:
        rec = self._rec()
        if rec:
            process.stop(rec, grace=10)

    def start(self) -> None:
        if self.is_running():
            return
        machine, spec = self.lab.openstack_specs()
        init = self.lab.record("openstack", "init")
        if not _alive(init) or init is None:
            raise LabError("the DevStack machine is down", hint="run `workshop lab down` and `up --with openstack`")
        if self.name == "dockerd":
            rec = nodes.start_dockerd(machine, init)
        else:
            rec = openstack_lab.start_service(spec, init, self.name)
        self.lab._set_record("openstack", self.name, rec)

    def partition(self) -> None:
        nodes.partition(self.lab.openstack_specs()[0])

    def heal(self) -> None:
        nodes.heal(self.lab.openstack_specs()[0])

    def is_partitioned(self) -> bool:
        return nodes.is_partitioned(self.lab.openstack_specs()[0])
