"""`workshop lab up | down | status`: a real Docker engine and a 3-member etcd cluster on this machine."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_workshop.config import render_lab_toml
from pytest_workshop.errors import LabError
from pytest_workshop.lab import docker_engine, etcd_cluster, process
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
    "/usr/bin/etcd": "etcd-server",
    "/bin/busybox": "busybox-static",
    "/usr/sbin/iptables": "iptables",
}


@dataclass(frozen=True)
class LabSettings:
    name: str = "embedded"
    etcd_members: int = 3
    etcd_client_base: int = 23790
    etcd_peer_base: int = 23800
    etcd_quota_bytes: int | None = None
    bridge: str = "wslab0"
    bridge_cidr: str = "10.213.0.1/24"
    address_pool: str = "10.214.0.0/16"
    test_image: str = "busybox:1.36"


class EmbeddedLab:
    """The lab described by a state directory. Library API; the CLI is a thin shell over it."""

    def __init__(self, state_dir: Path = DEFAULT_STATE_DIR) -> None:
        self.state_dir = Path(state_dir)
        self.state = StateFile(self.state_dir / "state.json")

    # --- queries --------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        return self.state.load()

    def processes(self) -> list[ProcessRecord]:
        data = self.load()
        recs = [
            ProcessRecord.from_json(m["process"]) for m in data.get("etcd", {}).get("members", []) if m.get("process")
        ]
        if data.get("docker", {}).get("process"):
            recs.append(ProcessRecord.from_json(data["docker"]["process"]))
        return recs

    def is_up(self) -> bool:
        recs = self.processes()
        return bool(recs) and all(process.is_ours(r) for r in recs)

    # --- up -------------------------------------------------------------------------------
    @staticmethod
    def missing_binaries() -> list[str]:
        return [f"{path} (apt-get install {pkg})" for path, pkg in REQUIRED.items() if not Path(path).exists()]

    def up(self, settings: LabSettings, config_path: Path) -> dict[str, Any]:
        """Start everything; returns timings. Idempotent: a running lab is reported, not restarted."""
        if os.geteuid() != 0:
            raise LabError(
                "the embedded lab needs root (it starts dockerd and creates a bridge)", hint="run it as root"
            )
        missing = self.missing_binaries()
        if missing:
            raise LabError(
                "missing: " + "; ".join(missing),
                hint="install those packages, then run `workshop lab up` again",
            )
        if self.is_up():
            self.write_config(config_path)
            return {"already_running": True}
        if self.load():
            self.down()  # a crashed or half-stopped lab: clean it, then start fresh
        t0 = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        engine = docker_engine.EngineSpec(
            str(self.state_dir), settings.bridge, settings.bridge_cidr, settings.address_pool
        )
        docker_engine.check_ranges(engine)
        docker_engine.check_bridge_free(engine)
        specs = etcd_cluster.member_specs(
            self.state_dir, settings.etcd_members, settings.etcd_client_base, settings.etcd_peer_base
        )
        busy = etcd_cluster.ports_in_use(specs)
        if busy:
            raise LabError(
                f"port(s) {', '.join(map(str, busy))} on 127.0.0.1 are already in use (another lab, or a system etcd?)",
                hint="stop that, or pick other ports with --etcd-port-base",
            )
        token = f"workshop-{secrets.token_hex(4)}"
        self.state.save({
            "name": settings.name,
            "settings": settings.__dict__,
            "started": time.time(),
            "etcd": {"token": token, "members": [{"spec": s.to_json()} for s in specs]},
            "docker": {"spec": engine.to_json()},
        })  # fmt: skip
        try:
            # etcd members 0.1 s apart: all at once, 3.4 sometimes stalls ~1 s per peer probing (research).
            for spec in specs:
                self._start_etcd(spec)
                time.sleep(0.1)
            docker_engine.create_bridge(engine)
            self._record_docker(docker_engine.start(engine))
            etcd_cluster.wait_healthy(specs, 30, self._dead_etcd)
            t_etcd = time.monotonic() - t0
            image_how = self._wait_docker_and_image(engine, settings)
        except BaseException:
            self.down()
            raise
        self.write_config(config_path)
        return {
            "seconds": round(time.monotonic() - t0, 2),
            "etcd_ready_s": round(t_etcd, 2),
            "test_image": image_how,
        }

    def _start_etcd(self, spec: etcd_cluster.MemberSpec) -> None:
        data = self.load()
        cluster = [etcd_cluster.MemberSpec(**m["spec"]) for m in data["etcd"]["members"]]
        rec = etcd_cluster.start_member(spec, cluster, data["etcd"]["token"], data["settings"].get("etcd_quota_bytes"))
        for m in data["etcd"]["members"]:
            if m["spec"]["name"] == spec.name:
                m["process"] = rec.to_json()
        self.state.save(data)

    def _dead_etcd(self) -> list[str]:
        return [
            m["spec"]["name"]
            for m in self.load()["etcd"]["members"]
            if m.get("process") and not process.is_ours(ProcessRecord.from_json(m["process"]))
        ]

    def _record_docker(self, rec: ProcessRecord) -> None:
        data = self.load()
        data["docker"]["process"] = rec.to_json()
        self.state.save(data)

    def _wait_docker_and_image(self, engine: docker_engine.EngineSpec, settings: LabSettings) -> str:
        from pytest_workshop.components import docker as docker_component
        from pytest_workshop.config import DockerConfig, Timeouts

        cfg = DockerConfig(host=engine.host, test_image=settings.test_image, pull=False)
        deadline = time.monotonic() + 30
        while True:
            rec = ProcessRecord.from_json(self.load()["docker"]["process"])
            if not process.is_ours(rec):
                raise LabError("dockerd exited during start-up", hint=f"read {engine.log}")
            try:
                client = docker_component.connect(cfg, Timeouts(request=2))
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise LabError("dockerd did not answer within 30 s", hint=f"read {engine.log}") from None
                time.sleep(0.1)
        try:
            _, how = docker_component.ensure_test_image(client, cfg)
        finally:
            client.close()
        return how

    def write_config(self, path: Path) -> Path:
        data = self.load()
        settings = data["settings"]
        endpoints = [etcd_cluster.MemberSpec(**m["spec"]).client_url for m in data["etcd"]["members"]]
        text = render_lab_toml(
            {
                "lab": {"name": data["name"], "allow_breakage": True},
                "timeouts": {"connect": 2.0, "request": 3.0, "check": 30.0, "converge": 30.0},
                "docker": {"host": docker_engine.EngineSpec(**data["docker"]["spec"]).host,
                           "test_image": settings["test_image"], "pull": False},
                "etcd": {"endpoints": endpoints, "members": len(endpoints)},
            },
            header=f"{WRITTEN_MARK} for the lab in {self.state_dir}; removed by `workshop lab down`.\n"
            "The embedded lab is disposable, so breakage (lab6) is allowed here.",
        )  # fmt: skip
        path = path.resolve()
        path.write_text(text)
        configs = set(data.get("configs", [])) | {str(path)}
        self.state.update(configs=sorted(configs))
        return path

    # --- down -----------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop exactly what up started and remove its traces. Safe to repeat; never raises for leftovers."""
        data = self.load()
        done: list[str] = []
        docker = data.get("docker", {})
        if docker.get("process"):
            rec = ProcessRecord.from_json(docker["process"])
            if process.stop(rec, grace=15):
                done.append(f"stopped dockerd (pid {rec.pid})")
        for m in data.get("etcd", {}).get("members", []):
            if m.get("process"):
                rec = ProcessRecord.from_json(m["process"])
                if process.stop(rec, grace=5):
                    done.append(f"stopped {rec.name} (pid {rec.pid})")
        if data.get("etcd", {}).get("members"):
            etcd_cluster.remove_chain(self._chain(data))
        if docker.get("spec"):
            spec = docker_engine.EngineSpec(**docker["spec"])
            self._kill_leftover_shims(spec)
            for target in docker_engine.unmount_below(spec.state_dir):
                done.append(f"unmounted {target}")
            for bridge in [spec.bridge, *docker_engine.pool_bridges(spec.address_pool)]:
                if docker_engine.delete_bridge(bridge):
                    done.append(f"removed bridge {bridge}")
        for cfg in data.get("configs", []):
            p = Path(cfg)
            if p.is_file() and p.read_text().startswith("# " + WRITTEN_MARK):
                p.unlink()
                done.append(f"removed {p}")
        if data and self.state_dir.exists():
            for sub in ("etcd", "docker", "logs"):
                shutil.rmtree(self.state_dir / sub, ignore_errors=True)
            self.state.remove()
            with contextlib.suppress(OSError):
                self.state_dir.rmdir()  # only if nothing else lives there
            done.append(f"removed {self.state_dir}")
        return done

    def _kill_leftover_shims(self, spec: docker_engine.EngineSpec) -> None:
        """containerd-shims of this engine outlive a killed dockerd; find them by our exec-root only."""
        marker = f"{spec.state_dir}/docker/exec".encode()
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                cmdline = (pid_dir / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline and (b"containerd" in cmdline.split(b"\0")[0]):
                try:
                    os.kill(int(pid_dir.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    @staticmethod
    def _chain(data: dict[str, Any]) -> str:
        return etcd_cluster.chain_name(int(data["etcd"]["members"][0]["spec"]["client_port"]))

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
        members = []
        for m in data["etcd"]["members"]:
            spec = etcd_cluster.MemberSpec(**m["spec"])
            rec = ProcessRecord.from_json(m["process"]) if m.get("process") else None
            running = bool(rec and process.is_ours(rec))
            paused = bool(rec and running and process.is_paused(rec))
            health = (
                "paused"
                if paused
                else (
                    "healthy"
                    if running and etcd_cluster.member_healthy(spec)
                    else "unhealthy"
                    if running
                    else "stopped"
                )
            )
            members.append(
                {
                    "name": spec.name,
                    "endpoint": spec.client_url,
                    "pid": rec.pid if rec else None,
                    "health": health,
                    "rss_mib": round(process.rss_kib(rec) / 1024, 1) if running and rec else 0,
                }
            )
        out["etcd"] = members
        docker = data["docker"]
        engine = docker_engine.EngineSpec(**docker["spec"])
        rec = ProcessRecord.from_json(docker["process"]) if docker.get("process") else None
        running = bool(rec and process.is_ours(rec))
        out["docker"] = {
            "host": engine.host,
            "pid": rec.pid if rec else None,
            "health": self._docker_health(engine) if running else "stopped",
            "rss_mib": round(process.rss_kib(rec) / 1024, 1) if running and rec else 0,
        }
        out["configs"] = data.get("configs", [])
        return out

    @staticmethod
    def _docker_health(spec: docker_engine.EngineSpec) -> str:
        import socket

        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(spec.socket)
                s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return "healthy" if b"OK" in s.recv(1024) else "unhealthy"
        except OSError as e:
            return f"unhealthy ({e.strerror or e})"

    # --- control layer --------------------------------------------------------------------
    def members(self, component: str) -> list[MemberControl]:
        data = self.load()
        if component == "etcd":
            return [EtcdMember(self, m["spec"]["name"]) for m in data.get("etcd", {}).get("members", [])]
        if component == "docker":
            return [DockerEngineMember(self)] if data.get("docker") else []
        raise LabError(f"the embedded lab has no component {component!r}", hint="use etcd or docker")

    def member(self, component: str, name: str) -> MemberControl:
        for m in self.members(component):
            if m.name == name:
                return m
        raise LabError(f"no {component} member named {name!r}", hint="see `workshop lab status`")


class _ProcessMember:
    component = ""

    def __init__(self, lab: EmbeddedLab, name: str) -> None:
        self.lab, self.name = lab, name

    def _record(self) -> ProcessRecord | None:
        raise NotImplementedError

    def is_running(self) -> bool:
        rec = self._record()
        return bool(rec and process.is_ours(rec))

    def is_paused(self) -> bool:
        rec = self._record()
        return bool(rec and process.is_ours(rec) and process.is_paused(rec))

    def stop(self) -> None:
        rec = self._record()
        if rec:
            process.stop(rec)

    def kill(self) -> None:
        rec = self._record()
        if rec:
            process.kill(rec)

    def pause(self) -> None:
        rec = self._record()
        if not rec or not process.signal_process(rec, signal.SIGSTOP):
            raise LabError(f"{self.name} is not running", hint="start it first")

    def resume(self) -> None:
        rec = self._record()
        if rec:
            process.signal_process(rec, signal.SIGCONT)


class EtcdMember(_ProcessMember):
    component = "etcd"

    def _entry(self) -> dict[str, Any]:
        for m in self.lab.load()["etcd"]["members"]:
            if m["spec"]["name"] == self.name:
                return dict(m)
        raise LabError(f"no etcd member {self.name}")

    def _record(self) -> ProcessRecord | None:
        p = self._entry().get("process")
        return ProcessRecord.from_json(p) if p else None

    @property
    def spec(self) -> etcd_cluster.MemberSpec:
        return etcd_cluster.MemberSpec(**self._entry()["spec"])

    def start(self) -> None:
        if self.is_running():
            return
        self.lab._start_etcd(self.spec)

    def partition(self) -> None:
        data = self.lab.load()
        cluster = [etcd_cluster.MemberSpec(**m["spec"]) for m in data["etcd"]["members"]]
        etcd_cluster.partition(self.lab._chain(data), self.spec, cluster)

    def heal(self) -> None:
        etcd_cluster.heal(self.lab._chain(self.lab.load()), self.spec)


class DockerEngineMember(_ProcessMember):
    component = "docker"

    def __init__(self, lab: EmbeddedLab) -> None:
        super().__init__(lab, "dockerd")

    def _record(self) -> ProcessRecord | None:
        p = self.lab.load()["docker"].get("process")
        return ProcessRecord.from_json(p) if p else None

    def start(self) -> None:
        if self.is_running():
            return
        spec = docker_engine.EngineSpec(**self.lab.load()["docker"]["spec"])
        docker_engine.unmount_below(f"{spec.state_dir}/docker/exec")
        self.lab._record_docker(docker_engine.start(spec))
        deadline = time.monotonic() + 30
        while self.lab._docker_health(spec) != "healthy":
            if time.monotonic() > deadline or not self.is_running():
                raise LabError("dockerd did not come back within 30 s", hint=f"read {spec.log}")
            time.sleep(0.1)

    def partition(self) -> None:
        raise LabError(
            "a single local engine cannot be partitioned",
            hint="the multi-node lab (issue 3) adds node partitions",
        )

    def heal(self) -> None:
        return None
