"""The lab's state: what `up` started, so `down` and the control layer act on exactly that.

Typed (LabState and its entries) in memory; in ``state.json`` it keeps the layout earlier
versions wrote, so a lab started by an older checkout is still stopped by this one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pytest_workshop.errors import LabError
from pytest_workshop.lab.etcd_cluster import MemberSpec
from pytest_workshop.lab.nodes import NodeSpec
from pytest_workshop.lab.openstack import OpenStackSpec
from pytest_workshop.lab.process import ProcessRecord
from pytest_workshop.lab.settings import LabSettings

# which processes a lab records: kind -> what the name means
RECORD_KINDS = ("init", "dockerd", "etcd", "forwarder", "openstack")


def _record(raw: dict[str, Any] | None) -> ProcessRecord | None:
    return ProcessRecord.from_json(raw) if raw else None


def _raw(rec: ProcessRecord | None) -> dict[str, Any] | None:
    return rec.to_json() if rec else None


@dataclass
class NodeEntry:
    """A lab machine (a Swarm node): its init, and the Docker engine running in it."""

    spec: NodeSpec
    init: ProcessRecord | None = None
    dockerd: ProcessRecord | None = None


@dataclass
class EtcdEntry:
    spec: MemberSpec
    process: ProcessRecord | None = None


@dataclass
class OpenStackEntry:
    """The DevStack machine: its netns machine, its services' layout, and their processes by name."""

    machine: NodeSpec
    spec: OpenStackSpec
    processes: dict[str, ProcessRecord | None] = field(default_factory=dict)
    complete: bool = False


@dataclass
class LabState:
    name: str
    settings: LabSettings
    started: float
    namespaces: list[str]
    nodes: list[NodeEntry]
    etcd_token: str
    etcd: list[EtcdEntry]
    complete: bool = False
    forwarder: ProcessRecord | None = None
    openstack: OpenStackEntry | None = None
    configs: list[str] = field(default_factory=list)  # lab.toml files `up` wrote, removed by `down`

    @property
    def node_specs(self) -> list[NodeSpec]:
        return [n.spec for n in self.nodes]

    @property
    def etcd_specs(self) -> list[MemberSpec]:
        return [m.spec for m in self.etcd]

    def openstack_entry(self) -> OpenStackEntry:
        if self.openstack is None:
            raise LabError("this lab has no OpenStack", hint="run `workshop lab up --with openstack`")
        return self.openstack

    def record(self, kind: str, name: str) -> ProcessRecord | None:
        """The process record of a node's ``init`` or ``dockerd``, an ``etcd`` member, the
        ``forwarder``, or an ``openstack`` process (init, dockerd, forwarder, a service)."""
        if kind == "etcd":
            return next((m.process for m in self.etcd if m.spec.name == name), None)
        if kind == "forwarder":
            return self.forwarder
        if kind == "openstack":
            return self.openstack.processes.get(name) if self.openstack else None
        if kind in ("init", "dockerd"):
            return next((getattr(n, kind) for n in self.nodes if n.spec.name == name), None)
        raise ValueError(f"unknown process kind {kind!r} (one of {', '.join(RECORD_KINDS)})")

    def set_record(self, kind: str, name: str, rec: ProcessRecord | None) -> None:
        if kind == "etcd":
            for m in self.etcd:
                if m.spec.name == name:
                    m.process = rec
        elif kind == "forwarder":
            self.forwarder = rec
        elif kind == "openstack":
            self.openstack_entry().processes[name] = rec
        elif kind in ("init", "dockerd"):
            for n in self.nodes:
                if n.spec.name == name:
                    setattr(n, kind, rec)
        else:
            raise ValueError(f"unknown process kind {kind!r} (one of {', '.join(RECORD_KINDS)})")

    def processes(self) -> list[ProcessRecord]:
        recs = [r for n in self.nodes for r in (n.init, n.dockerd)]
        recs += [m.process for m in self.etcd]
        recs.append(self.forwarder)
        if self.openstack:
            recs += list(self.openstack.processes.values())
        return [r for r in recs if r is not None]

    # --- the file's layout ----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "settings": asdict(self.settings),
            "started": self.started,
            "complete": self.complete,
            "namespaces": list(self.namespaces),
            "nodes": [{"spec": n.spec.to_json(), "init": _raw(n.init), "dockerd": _raw(n.dockerd)} for n in self.nodes],
            "etcd": {
                "token": self.etcd_token,
                "members": [{"spec": m.spec.to_json(), "process": _raw(m.process)} for m in self.etcd],
            },
            "forwarder": _raw(self.forwarder),
            "configs": list(self.configs),
        }
        if self.openstack:
            data["openstack"] = {
                "machine": self.openstack.machine.to_json(),
                "spec": self.openstack.spec.to_json(),
                "processes": {k: _raw(v) for k, v in self.openstack.processes.items()},
                "complete": self.openstack.complete,
            }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        known = {f.name for f in fields(LabSettings)}
        settings = LabSettings(**{k: v for k, v in data["settings"].items() if k in known})
        openstack = None
        if "openstack" in data:
            o = data["openstack"]
            openstack = OpenStackEntry(
                NodeSpec(**o["machine"]),
                OpenStackSpec(**o["spec"]),
                {k: _record(v) for k, v in o.get("processes", {}).items()},
                bool(o.get("complete")),
            )
        return cls(
            name=data["name"],
            settings=settings,
            started=float(data.get("started", 0)),
            namespaces=list(data.get("namespaces", [])),
            nodes=[
                NodeEntry(NodeSpec(**n["spec"]), _record(n.get("init")), _record(n.get("dockerd")))
                for n in data.get("nodes", [])
            ],
            etcd_token=data.get("etcd", {}).get("token", ""),
            etcd=[
                EtcdEntry(MemberSpec(**m["spec"]), _record(m.get("process")))
                for m in data.get("etcd", {}).get("members", [])
            ],
            complete=bool(data.get("complete")),
            forwarder=_record(data.get("forwarder")),
            openstack=openstack,
            configs=list(data.get("configs", [])),
        )


class StateFile:
    """``state.json``: one load, one save (write-then-rename), and edit() for read-modify-write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> LabState | None:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise LabError(
                f"{self.path}: unreadable lab state ({e})",
                hint="stop what is left by hand (`ip netns list`, `ps`) and remove that file",
            ) from None
        return LabState.from_json(raw) if raw else None

    def save(self, state: LabState) -> None:
        # Write-then-rename: a crash mid-write must not lose the record of running processes.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    @contextlib.contextmanager
    def edit(self) -> Iterator[LabState]:
        state = self.load()
        if state is None:
            raise LabError(f"no lab state in {self.path}", hint="run `workshop lab up` first")
        yield state
        self.save(state)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
