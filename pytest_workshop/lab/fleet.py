"""The embedded fleet: N independent small labs on this machine (``workshop lab up --fleet N``), so
that fleet runs are tested against real engines and etcd, as an instructor's are against
attendee VMs.

Each lab is an ordinary embedded lab (lab/embedded.py) with its own state directory, namespaces
(prefix ``wf<i>``), lab segment, etcd ports and name (``attendee-01``...). The first ``multi_node``
labs have three machines (a real Swarm for lab2), the others one; the next ``tls`` labs' engines
and etcd are reached over TLS with client certificates (tcp:// with DOCKER_CERT_PATH's file names;
https:// with etcdctl's --cacert/--cert/--key), as an attendee VM's may be. ``up`` writes, in ``out``:

- ``labs/<name>.toml``: one lab.toml per lab (a folder of them is a fleet: ``--labs out/labs``);
- ``fleet.toml``: the same labs as one fleet file;
- ``inventory.yml``: the same labs as an Ansible YAML inventory (``workshop_<section>_<key>``).
"""

from __future__ import annotations

import json
import shutil
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_workshop.config.writer import render_lab_toml
from pytest_workshop.errors import LabError
from pytest_workshop.lab import ssh
from pytest_workshop.lab.embedded import EmbeddedLab
from pytest_workshop.lab.settings import LabSettings

FLEET_DIR = Path("/var/tmp/workshop-fleet")
MEMBERS_FILE = "fleet.json"
MAX_LABS = 16  # by default lab segments 10.251.21-36.0/24 and etcd ports 27010-27163: clear of the other labs


@dataclass(frozen=True)
class FleetSpec:
    labs: int
    multi_node: int = 1  # how many of them have three machines (the rest have one)
    # Lab i: namespaces <prefix><i>, segment 10.251.<segment_base + i>.0/24, etcd on 127.0.0.1:<etcd_port_base + 10 i + k>.
    # A second fleet (the project's tests) beside an instructor's needs other values for all three.
    prefix: str = "wf"
    segment_base: int = 20
    etcd_port_base: int = 27000
    # how many labs, after the multi-node ones, are reached over TLS with client certificates: their
    # engine (tcp://, DOCKER_CERT_PATH) and their etcd (https://, --cacert/--cert/--key)
    tls: int = 1
    # how many labs, after those, are reached over SSH (machine and engine: ssh://); their clients
    # need the fleet's ssh home: HOME=<out>/ssh-home (lab/ssh.py)
    ssh: int = 0

    def _tls(self, i: int) -> bool:
        return self.multi_node < i <= self.multi_node + self.tls

    def _ssh(self, i: int) -> bool:
        first = self.multi_node + self.tls
        return first < i <= first + self.ssh

    def settings(self) -> list[LabSettings]:
        if not 1 <= self.labs <= MAX_LABS:
            raise LabError(f"--fleet {self.labs}: the embedded fleet has 1 to {MAX_LABS} labs", hint="use --fleet 4")
        out = []
        for i in range(1, self.labs + 1):
            nodes = 3 if i <= self.multi_node else 1
            out.append(
                LabSettings(
                    name=f"attendee-{i:02d}",
                    nodes=nodes,
                    managers=nodes,
                    etcd_members=nodes,
                    etcd_port_base=self.etcd_port_base + 10 * i,
                    prefix=f"{self.prefix}{i}",
                    segment=f"10.251.{self.segment_base + i}.0/24",
                    docker_tls_port=(self.etcd_port_base + 10 * i + 9) if self._tls(i) else None,
                    etcd_tls=self._tls(i),
                    ssh_port=(self.etcd_port_base + 10 * i + 8) if self._ssh(i) else None,
                )
            )
        return out


class EmbeddedFleet:
    """Usable from plain Python: ``EmbeddedFleet().up(FleetSpec(4), Path("fleet"))``."""

    def __init__(self, base: Path = FLEET_DIR) -> None:
        self.base = base

    def lab(self, name: str) -> EmbeddedLab:
        return EmbeddedLab(self.base / name)

    def names(self) -> list[str]:
        path = self.base / MEMBERS_FILE
        if not path.is_file():
            return []
        return list(json.loads(path.read_text())["labs"])

    def up(self, spec: FleetSpec, out: Path) -> dict[str, Any]:
        """Start every lab (one after another: each start is mostly the engines' own work), then
        write the inventories. A lab already running is kept."""
        t0 = time.monotonic()
        settings = spec.settings()
        self.base.mkdir(parents=True, exist_ok=True)
        names = sorted({*self.names(), *(s.name for s in settings)})
        (self.base / MEMBERS_FILE).write_text(json.dumps({"labs": names}) + "\n")  # before: down finds them all
        configs: dict[str, Path] = {}
        timings: dict[str, float] = {}
        for s in settings:
            started = time.monotonic()
            configs[s.name] = out / "labs" / f"{s.name}.toml"
            configs[s.name].parent.mkdir(parents=True, exist_ok=True)
            self.lab(s.name).up(s, configs[s.name])
            timings[s.name] = round(time.monotonic() - started, 2)
        sections = {name: tomllib.loads(path.read_text()) for name, path in configs.items()}
        write_fleet_file(out / "fleet.toml", sections)
        write_ansible_inventory(out / "inventory.yml", sections)
        reached = {ssh.alias(s.prefix): (s.ssh_port, self.base / s.name / "ssh") for s in settings if s.ssh_port}
        result = {"seconds": round(time.monotonic() - t0, 2), "labs": timings, "out": str(out)}
        if reached:
            ssh.write_client_home(out / "ssh-home", reached)
            result["ssh_home"] = str(out / "ssh-home")
        return result

    def down(self) -> list[str]:
        """Stop every lab of the fleet and remove the fleet's folder. Safe to repeat."""
        done: list[str] = []
        for name in self.names():
            done += self.lab(name).down()
        if self.base.exists():
            (self.base / MEMBERS_FILE).unlink(missing_ok=True)
            shutil.rmtree(self.base, ignore_errors=True)
            done.append(f"removed {self.base}")
        return done

    def memory_mib(self) -> dict[str, float]:
        """Resident memory per lab: its machines (engines and everything in them) and etcd members."""
        out = {}
        for name in self.names():
            status = self.lab(name).status()
            out[name] = round(sum(n.get("rss_mib") or 0 for n in status.get("nodes", [])), 1)
        return out


def write_fleet_file(path: Path, labs: dict[str, dict[str, Any]]) -> None:
    """One fleet file: each lab's sections under [labs.<name>.<section>] (no shared defaults: the
    embedded labs differ in every address)."""
    tables: dict[str, dict[str, Any]] = {}
    for name, sections in labs.items():
        for section, values in sections.items():
            tables[f'labs."{name}".{section}'] = values
    path.write_text(render_lab_toml(tables, header="written by `workshop lab up --fleet`: the embedded fleet"))


def write_ansible_inventory(path: Path, labs: dict[str, dict[str, Any]]) -> None:
    """The same labs as an Ansible YAML inventory, as an instructor who provisioned VMs has one."""
    import yaml

    hosts: dict[str, dict[str, Any]] = {}
    for name, sections in labs.items():
        host_vars: dict[str, Any] = {"ansible_host": "127.0.0.1"}
        if "host" not in sections.get("lab", {}):
            host_vars["workshop_lab_host"] = "local://"  # the lab machines are this machine's namespaces
        for section, values in sections.items():
            for key, value in values.items():
                host_vars[f"workshop_{section}_{key}"] = value
        host_vars["workshop_components"] = [
            s for s in sections if s in ("docker", "swarm", "etcd", "openstack", "kuryr")
        ]
        hosts[name] = host_vars
    text = "# written by `workshop lab up --fleet`: the embedded fleet as an Ansible inventory\n"
    path.write_text(text + yaml.safe_dump({"all": {"children": {"attendees": {"hosts": hosts}}}}, sort_keys=False))
