"""A run's identity: the label on every Docker object and the prefix of every etcd key it creates.

A run registers itself in a small on-disk registry (pid + process start time) so the
janitor can tell a live run's objects from a crashed run's leftovers without a reaper
container (there is no registry to pull one from, and a reaper would itself leak).
"""

from __future__ import annotations

import json
import os
import secrets
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

    def unregister(self) -> None:
        entry, late = REGISTRY / f"{self.run_id}.json", REGISTRY / f"{self.run_id}.late"
        if late.exists():
            # Something of this run may still appear (a create the lab had not finished when the
            # run gave up on it): stay known as an ended run, so the automatic sweeps of the runs
            # that follow remove it, for LATE_OBJECTS_S.
            entry.write_text(json.dumps({"pid": -1, "start": None, "late_until": time.time() + LATE_OBJECTS_S}))
            late.unlink(missing_ok=True)
        else:
            entry.unlink(missing_ok=True)


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


def forget_dead_runs() -> list[str]:
    gone = []
    if REGISTRY.is_dir():
        for f in REGISTRY.glob("*.json"):
            if not run_is_alive(f.stem) and _late_until(f.stem) < time.time():
                f.unlink(missing_ok=True)
                gone.append(f.stem)
    return gone
