"""The embedded lab's members as the control layer sees them (lab/control.py's MemberControl): a
machine, a node's Docker engine, an etcd member, an OpenStack service. Each acts on the processes
the lab recorded, through the lab's public API."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from pytest_workshop.components.waiting import wait_for, wait_until
from pytest_workshop.errors import LabError
from pytest_workshop.lab import etcd_cluster, nodes, process
from pytest_workshop.lab import openstack as openstack_lab
from pytest_workshop.lab.process import ProcessRecord
from pytest_workshop.lab.status import alive, docker_health

if TYPE_CHECKING:
    from pytest_workshop.lab.machines import LabMachines


class NodeMember:
    """A whole lab machine: crash it (power loss), boot it, freeze it (hung), cut its cable."""

    def started_by_the_lab(self) -> bool:
        return True

    component = "node"

    def __init__(self, lab: LabMachines, name: str) -> None:
        self.lab, self.name = lab, name

    @property
    def spec(self) -> nodes.NodeSpec:
        return self.lab.node_spec(self.name)

    def is_running(self) -> bool:
        return alive(self.lab.record("init", self.name))

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
        self.lab.boot(self.spec)
        for m in self.lab.etcd_specs():
            if m.node == self.name:
                self.lab.start_etcd(m)

    def pause(self) -> None:
        init = self.lab.record("init", self.name)
        if not alive(init) or init is None:
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

    def started_by_the_lab(self) -> bool:
        return self._rec() is not None

    name: str
    stop_grace = 10.0

    def _rec(self) -> ProcessRecord | None:
        raise NotImplementedError

    def is_running(self) -> bool:
        return alive(self._rec())

    def is_paused(self) -> bool:
        rec = self._rec()
        return bool(rec and alive(rec) and process.is_paused(rec))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_grace`` seconds."""
        rec = self._rec()
        if rec:
            process.stop(rec, grace=self.stop_grace)

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
    stop_grace = 15.0  # a Swarm manager hands over its tasks

    def __init__(self, lab: LabMachines, node: str) -> None:
        self.lab, self.node, self.name = lab, node, node

    def _rec(self) -> ProcessRecord | None:
        return self.lab.record("dockerd", self.node)

    def start(self) -> None:
        if self.is_running():
            return
        spec = self.lab.node_spec(self.node)
        init = self.lab.record("init", self.node)
        if not alive(init) or init is None:
            raise LabError(
                f"{self.node} is down, so its engine cannot start",
                hint=f"boot the node: lab.member('node', '{self.node}').start()",
            )
        self.lab.set_record("dockerd", self.node, nodes.start_dockerd(spec, init))
        wait_for(
            f"dockerd on {self.node} did not come back",
            lambda: docker_health(spec, "/_ping") == "healthy",
            30,
            step=0.05,
            error=LabError,
            abort=lambda: None if self.is_running() else "it exited",
            observe=lambda: "",
            hint=f"read {spec.log}",
        )

    def partition(self) -> None:
        nodes.partition(self.lab.node_spec(self.node))

    def heal(self) -> None:
        nodes.heal(self.lab.node_spec(self.node))

    def is_partitioned(self) -> bool:
        return nodes.is_partitioned(self.lab.node_spec(self.node))


class EtcdMember(_ProcessMember):
    """One etcd member (on its node)."""

    component = "etcd"
    stop_grace = 5.0

    def __init__(self, lab: LabMachines, name: str) -> None:
        self.lab, self.name = lab, name

    @property
    def spec(self) -> etcd_cluster.MemberSpec:
        for m in self.lab.etcd_specs():
            if m.name == self.name:
                return m
        raise LabError(f"no etcd member {self.name}")

    def _rec(self) -> ProcessRecord | None:
        return self.lab.record("etcd", self.name)

    def start(self) -> None:
        if not self.is_running():
            self.lab.start_etcd(self.spec)

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
    stop_grace = 10.0

    def __init__(self, lab: LabMachines, name: str) -> None:
        self.lab, self.name = lab, name

    def _rec(self) -> ProcessRecord | None:
        return self.lab.record("openstack", self.name)

    def start(self) -> None:
        if self.is_running():
            return
        machine, spec = self.lab.openstack_specs()
        init = self.lab.record("openstack", "init")
        if not alive(init) or init is None:
            raise LabError("the DevStack machine is down", hint="run `workshop lab down` and `up --with openstack`")
        if self.name == "dockerd":
            rec = nodes.start_dockerd(machine, init)
        else:
            rec = openstack_lab.start_service(spec, init, self.name)
        self.lab.set_record("openstack", self.name, rec)

    def partition(self) -> None:
        nodes.partition(self.lab.openstack_specs()[0])

    def heal(self) -> None:
        nodes.heal(self.lab.openstack_specs()[0])

    def is_partitioned(self) -> bool:
        return nodes.is_partitioned(self.lab.openstack_specs()[0])
