"""Pure logic of the fault machinery: the journal, the lab lock, the systemd control's commands,
the matrix's verdict. (The scenarios themselves are proven on the real lab: test_breakage_matrix.)"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_workshop.errors import WorkshopError
from pytest_workshop.faults.journal import Journal
from pytest_workshop.faults.matrix import Row
from pytest_workshop.faults.systemd import SystemdControl
from pytest_workshop.plugin.concurrency import locks


def test_journal_records_before_and_forgets_after(tmp_path: Path) -> None:
    journal = Journal("attendee/07", tmp_path)
    first = journal.record("etcd-leader-killed", {"members": ["etcd1"]})
    second = journal.record("kuryr-not-answering", {}, origin="instructor")
    (journal.dir / "garbage.json").write_text("{not json")  # unreadable entries are skipped, not guessed
    assert [e.scenario for e in journal.entries()] == ["etcd-leader-killed", "kuryr-not-answering"]
    assert journal.entries()[1].origin == "instructor"
    journal.update(first, {"members": ["etcd2"]})
    assert journal.entries()[0].data == {"members": ["etcd2"]}
    journal.remove(first)
    journal.remove(second)
    assert journal.entries() == []
    assert journal.dir.name == "attendee_07"


def test_lab_lock_exclusive_keeps_others_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locks, "LOCK_DIR", tmp_path)
    lab = locks.LAB
    with locks.hold(lab, "lab", exclusive=False, timeout=1), locks.hold(lab, "lab", exclusive=False, timeout=1):
        pass  # readers share
    held = locks.hold(lab, "lab", exclusive=True, timeout=1)
    reader = locks.hold(lab, "lab", exclusive=False, timeout=0.2)
    with held, pytest.raises(WorkshopError, match="while a disruptive check runs"), reader:
        pass
    shared = locks.hold(lab, "lab", exclusive=False, timeout=1)
    writer = locks.hold(lab, "lab", exclusive=True, timeout=0.2)
    with shared, pytest.raises(WorkshopError, match="alone"), writer:
        pass


def test_each_lock_of_the_table_is_a_file_of_its_own_per_lab() -> None:
    paths = {lock.path("attendee-07") for lock in locks.LOCKS}
    assert len(paths) == len(locks.LOCKS)
    assert locks.LAB.path("attendee-07").name == "attendee-07.lock"  # what older runs hold too


def test_the_overlay_join_guard_is_skipped_when_it_cannot_be_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks, "LOCK_DIR", tmp_path)
    with locks.hold(locks.OVERLAY_JOIN, "lab", exclusive=True, timeout=1), locks.overlay_join_guard("lab", 0.1):
        pass  # went ahead without it


class FakeHost:
    """Records commands; `iptables -C` answers from the rules it has seen inserted."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.rules: set[str] = set()

    def run(self, command: str, *args: str) -> SimpleNamespace:
        import shlex

        text = command % tuple(shlex.quote(a) for a in args) if args else command  # as testinfra quotes
        self.commands.append(text)
        rc = 0
        if text.startswith("iptables -C "):
            rc = 0 if text[12:] in self.rules else 1
        elif text.startswith("iptables -I "):
            self.rules.add(text[12:])
        elif text.startswith("iptables -D "):
            self.rules.discard(text[12:])
        return SimpleNamespace(rc=rc, stdout="", stderr="")


def test_systemd_control_maps_members_to_units() -> None:
    host = FakeHost()
    control = SystemdControl("ssh://root@lab", host=host)
    control.member("openstack", "keystone").stop()
    control.member("openstack", "kuryr").start()
    control.member("etcd", "etcd").pause()
    assert host.commands == [
        "systemctl stop devstack@keystone",
        "systemctl start devstack@kuryr-libnetwork",
        "systemctl kill --signal=STOP etcd",
    ]
    etcd = control.member("etcd", "etcd")
    etcd.partition()
    assert etcd.is_partitioned() and all("--dport 2380" in r or "--sport 2380" in r for r in host.rules)
    assert all("--comment 'pytest-workshop partition etcd'" in r for r in host.rules)  # one quoted argument
    etcd.heal()
    assert not etcd.is_partitioned() and not host.rules
    with pytest.raises(WorkshopError, match="no 'node' members"):
        control.members("node")


def test_a_scenario_nothing_notices_is_not_detected() -> None:
    assert not Row("x", "etcd", []).detected
    assert not Row("x", "etcd", ["LAB3-01"], still_passing=["LAB3-01"]).detected
    assert Row("x", "etcd", ["LAB3-01"]).detected


def test_every_detected_by_id_is_a_check_in_the_suites() -> None:
    """A scenario detected by a check that does not exist would pass the matrix by never running."""
    import re

    from pytest_workshop.faults.scenarios import SCENARIOS

    suites = Path(__file__).resolve().parents[2] / "suites"
    catalogue = set()
    for source in suites.glob("lab*/test_*.py"):
        catalogue |= set(re.findall(r'@pytest\.mark\.check\(\s*"(LAB\d-\d\d)"', source.read_text()))
    assert len(catalogue) > 50
    unknown = {s.name: sorted(set(s.detected_by) - catalogue) for s in SCENARIOS if set(s.detected_by) - catalogue}
    assert not unknown, unknown
