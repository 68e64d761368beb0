"""The lab's typed state: one round trip through state.json's layout, and the records it keeps."""

from __future__ import annotations

import json

import pytest

from pytest_workshop.errors import LabError
from pytest_workshop.lab import etcd_cluster, nodes
from pytest_workshop.lab import openstack as openstack_lab
from pytest_workshop.lab.process import ProcessRecord
from pytest_workshop.lab.settings import LabSettings
from pytest_workshop.lab.state import EtcdEntry, LabState, NodeEntry, OpenStackEntry, StateFile


def a_state(tmp_path, with_openstack: bool = False) -> LabState:
    specs = nodes.node_specs(tmp_path, "wsq", 2, "10.251.0.0/24")
    members = etcd_cluster.member_specs(tmp_path, specs, 1, 23790)
    state = LabState(
        name="unit",
        settings=LabSettings(name="unit", nodes=2, managers=1, etcd_members=1, prefix="wsq"),
        started=1.0,
        namespaces=["wsq-sw", "wsq-cl"],
        nodes=[NodeEntry(s) for s in specs],
        etcd_token="workshop-0000",
        etcd=[EtcdEntry(m) for m in members],
    )
    if with_openstack:
        machine = openstack_lab.machine_spec(tmp_path, "wsq", "10.251.0.0/24")
        state.openstack = OpenStackEntry(machine, openstack_lab.OpenStackSpec(str(tmp_path / "os"), 5000, 9696))
    return state


def rec(name: str, pid: int) -> ProcessRecord:
    return ProcessRecord(name, pid, ("/bin/true",), 42, f"/tmp/{name}.log")


def test_records_are_set_and_read_by_kind(tmp_path):
    state = a_state(tmp_path, with_openstack=True)
    state.set_record("init", "node1", rec("init", 10))
    state.set_record("dockerd", "node2", rec("dockerd", 11))
    state.set_record("etcd", "etcd1", rec("etcd", 12))
    state.set_record("forwarder", "", rec("fwd", 13))
    state.set_record("openstack", "keystone", rec("keystone", 14))
    assert state.record("init", "node1").pid == 10 and state.record("dockerd", "node1") is None
    assert [r.pid for r in state.processes()] == [10, 11, 12, 13, 14]
    with pytest.raises(ValueError, match="unknown process kind"):
        state.record("kubelet", "node1")


def test_the_file_round_trips_and_keeps_its_layout(tmp_path):
    state = a_state(tmp_path, with_openstack=True)
    state.set_record("etcd", "etcd1", rec("etcd", 12))
    file = StateFile(tmp_path / "state.json")
    file.save(state)
    assert file.load() == state
    raw = json.loads(file.path.read_text())
    # the layout earlier versions wrote (a lab started by an older checkout is still stopped)
    assert raw["etcd"]["token"] == "workshop-0000" and raw["etcd"]["members"][0]["process"]["pid"] == 12
    assert raw["nodes"][0]["spec"]["name"] == "node1" and raw["settings"]["prefix"] == "wsq"
    assert set(raw["openstack"]) == {"machine", "spec", "processes", "complete"}


def test_an_older_file_without_optional_keys_loads(tmp_path):
    raw = a_state(tmp_path).to_json()
    for key in ("forwarder", "configs", "complete"):
        del raw[key]
    raw["settings"]["retired_setting"] = 1  # a setting this version no longer knows is ignored
    (tmp_path / "state.json").write_text(json.dumps(raw))
    loaded = StateFile(tmp_path / "state.json").load()
    assert loaded is not None and loaded.forwarder is None and loaded.configs == [] and not loaded.complete


def test_edit_saves_and_a_missing_or_broken_file_is_said(tmp_path):
    file = StateFile(tmp_path / "state.json")
    assert file.load() is None
    with pytest.raises(LabError, match="no lab state"), file.edit():
        pass
    file.save(a_state(tmp_path))
    with file.edit() as state:
        state.complete = True
    assert file.load().complete
    file.path.write_text("{not json")
    with pytest.raises(LabError, match="unreadable lab state"):
        file.load()
    with pytest.raises(LabError, match="no OpenStack"):
        a_state(tmp_path).openstack_entry()
