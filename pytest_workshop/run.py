"""A run's identity: the label on every Docker object and the prefix of every etcd key it creates.

A run registers itself in a small on-disk registry (pid + process start time) so the
janitor can tell a live run's objects from a crashed run's leftovers without a reaper
container (there is no registry to pull one from, and a reaper would itself leak).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_workshop import processes

LABEL_RUN = "pytest-workshop.run"
LABEL_TEST = "pytest-workshop.test"
ETCD_ROOT = "/pytest-workshop/"
REGISTRY = Path(os.environ.get("WORKSHOP_RUN_REGISTRY", "/tmp/pytest-workshop-runs"))
# How long an ended run that may still get objects stays known to the automatic sweeps.
LATE_OBJECTS_S = 600.0


def new_run_id() -> str:
    # Sortable by time, unique across parallel runs on many machines.
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class Run:
    run_id: str

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL_RUN: self.run_id}

    @property
    def etcd_prefix(self) -> str:
        return f"{ETCD_ROOT}{self.run_id}/"

    @property
    def name_prefix(self) -> str:
        """Prefix for names of created objects (containers, networks), for humans reading `docker ps`."""
        return f"pw-{self.run_id[-6:]}-"

    # --- registry -------------------------------------------------------------------------
    def register(self, pid: int | None = None) -> None:
        pid = os.getpid() if pid is None else pid
        REGISTRY.mkdir(parents=True, exist_ok=True)
        entry = {"pid": pid, "start": processes.start_ticks(pid)}
        (REGISTRY / f"{self.run_id}.json").write_text(json.dumps(entry))

    def touched(self, where: str) -> None:
        """Say, from any process of the run, that it uses ``where`` ("docker:unix:///...",
        "etcd:...", "openstack:..."): if it dies, it is forgotten once each of those is swept."""
        _mark(self.run_id, "touched", where)

    def unregister(self) -> None:
        entry, late = REGISTRY / f"{self.run_id}.json", REGISTRY / f"{self.run_id}.late"
        leftovers = REGISTRY / f"{self.run_id}.leftovers"
        if leftovers.exists():
            # What its final sweep could not remove (a component down at the end): it stays known
            # as an ended run until each component it touched has been swept by a later run.
            until = time.time() + LATE_OBJECTS_S if late.exists() else 0.0
            entry.write_text(json.dumps({"pid": -1, "start": None, "late_until": until}))
            shutil.rmtree(REGISTRY / f"{self.run_id}.swept", ignore_errors=True)
            leftovers.unlink(missing_ok=True)
            late.unlink(missing_ok=True)
            return
        _forget_marks(self.run_id)
        if late.exists():
            # Something of this run may still appear (a create the lab had not finished when the
            # run gave up on it): stay known as an ended run, so the automatic sweeps of the runs
            # that follow remove it, for LATE_OBJECTS_S.
            entry.write_text(json.dumps({"pid": -1, "start": None, "late_until": time.time() + LATE_OBJECTS_S}))
            late.unlink(missing_ok=True)
        else:
            entry.unlink(missing_ok=True)


def expect_leftovers(run_id: str) -> None:
    """Say that the run's own final sweep could not remove everything (the next runs' will)."""
    REGISTRY.mkdir(parents=True, exist_ok=True)
    (REGISTRY / f"{run_id}.leftovers").touch()


def expect_late_objects(run_id: str) -> None:
    """Say, from any process of a run, that the lab may still create one of its objects after it
    ends (seen: a `docker network create` that timed out while kuryr hung completed once kuryr was
    resumed, after the run's clean-up had looked for it)."""
    REGISTRY.mkdir(parents=True, exist_ok=True)
    (REGISTRY / f"{run_id}.late").touch()


def run_is_registered(run_id: str) -> bool:
    return (REGISTRY / f"{run_id}.json").is_file()


def run_is_alive(run_id: str) -> bool:
    """True if the process that owns run_id still runs (same pid *and* same start time)."""
    try:
        entry = json.loads((REGISTRY / f"{run_id}.json").read_text())
    except (OSError, ValueError):
        return False
    start = entry.get("start")
    return start is not None and processes.is_alive(int(entry.get("pid", -1)), int(start))


def _late_until(run_id: str) -> float:
    try:
        return float(json.loads((REGISTRY / f"{run_id}.json").read_text()).get("late_until") or 0.0)
    except (OSError, ValueError, AttributeError):
        return 0.0


def _mark(run_id: str, kind: str, where: str) -> None:
    folder = REGISTRY / f"{run_id}.{kind}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha256(where.encode()).hexdigest()[:16]).write_text(where)


def _marks(run_id: str, kind: str) -> set[str]:
    folder = REGISTRY / f"{run_id}.{kind}"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _forget_marks(run_id: str) -> None:
    for kind in ("touched", "swept"):
        shutil.rmtree(REGISTRY / f"{run_id}.{kind}", ignore_errors=True)


def dead_runs() -> list[str]:
    """The runs this machine knows that have ended (killed, or ended with objects still to come)."""
    return [f.stem for f in REGISTRY.glob("*.json") if not run_is_alive(f.stem)] if REGISTRY.is_dir() else []


def mark_swept(where: str, runs: list[str]) -> None:
    """``where`` has just been swept of these dead runs' objects."""
    for run_id in runs:
        if (REGISTRY / f"{run_id}.json").is_file():
            _mark(run_id, "swept", where)


def forget_dead_runs(complete_only: bool = False) -> list[str]:
    """Forget the dead runs whose late objects can no longer come; with ``complete_only``, only
    those of which every component they touched has been swept since (a sweep of one component
    must not make the next component's sweep forget them)."""
    gone = []
    for run_id in dead_runs():
        if _late_until(run_id) >= time.time():
            continue
        if complete_only and not _marks(run_id, "touched") <= _marks(run_id, "swept"):
            continue
        (REGISTRY / f"{run_id}.json").unlink(missing_ok=True)
        _forget_marks(run_id)
        gone.append(run_id)
    return gone
