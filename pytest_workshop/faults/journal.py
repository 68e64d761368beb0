"""The restore journal: every injected fault is on disk *before* it is injected, and leaves it only
after it is restored. Whoever finds an entry (the next run, `workshop fix --all`, a SIGTERM
handler) can restore it: each entry carries what restoring needs (which member was chosen).

One JSON file per entry under ``<dir>/<lab>/``, written with write-then-rename, so a crash can
never leave half an entry; the file name is unique, so concurrent writers never collide.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_workshop import processes

DEFAULT_DIR = Path(os.environ.get("WORKSHOP_FAULT_JOURNAL", "/var/tmp/pytest-workshop-faults"))


@dataclass(frozen=True)
class Entry:
    scenario: str
    lab: str
    data: dict[str, Any] = field(default_factory=dict)  # what restore needs, e.g. {"member": "etcd2"}
    # "run": a disruptive check's fault (restored by the next run with --allow-breakage if orphaned);
    # "change": an ordinary check's own change (LAB2-12's drain: the next run undoes it, whatever its
    # options); "instructor": `workshop break`, the exercise, left alone
    origin: str = "run"
    pid: int = field(default_factory=os.getpid)
    since: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    # the injecting process's start time: with the pid, its identity (a pid alone gets reused);
    # None in entries written before it was recorded
    start: int | None = None

    @property
    def orphaned(self) -> bool:
        """Injected by a run (a check) whose process is gone: nobody will restore it but us."""
        return self.origin in ("run", "change") and not processes.is_alive(self.pid, self.start)

    def describe(self) -> str:
        if self.origin == "instructor":
            who = "an instructor (`workshop break`)"
        elif self.origin == "change":
            who = (
                f"a check of a run that died (pid {self.pid})"
                if self.orphaned
                else f"a check still going (pid {self.pid})"
            )
        else:
            who = f"a run that died (pid {self.pid})" if self.orphaned else f"a run still going (pid {self.pid})"
        member = ", ".join(f"{k} {v}" for k, v in self.data.items() if k != "component")
        return f"{self.scenario}" + (f" ({member})" if member else "") + f", injected by {who}"


class Journal:
    def __init__(self, lab_name: str, directory: Path | None = None) -> None:
        self.lab = lab_name
        self.dir = (directory or DEFAULT_DIR) / re.sub(r"[^A-Za-z0-9_.-]", "_", lab_name)

    def _path(self, entry_id: str) -> Path:
        return self.dir / f"{entry_id}.json"

    def record(self, scenario: str, data: dict[str, Any], origin: str = "run", pid: int | None = None) -> Entry:
        pid = pid or os.getpid()
        entry = Entry(scenario, self.lab, dict(data), origin, pid, start=processes.start_ticks(pid))
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{entry.id}.tmp"
        tmp.write_text(json.dumps(asdict(entry)))
        os.replace(tmp, self._path(entry.id))
        return entry

    def update(self, entry: Entry, data: dict[str, Any]) -> Entry:
        """Replace an entry's restore data (e.g. once the chosen member is known)."""
        updated = Entry(
            entry.scenario, entry.lab, dict(data), entry.origin, entry.pid, entry.since, entry.id, entry.start
        )
        tmp = self.dir / f".{entry.id}.tmp"
        tmp.write_text(json.dumps(asdict(updated)))
        os.replace(tmp, self._path(entry.id))
        return updated

    def remove(self, entry: Entry) -> None:
        self._path(entry.id).unlink(missing_ok=True)

    def entries(self) -> list[Entry]:
        if not self.dir.is_dir():
            return []
        out = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                out.append(Entry(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue  # unreadable: left for a human (never guessed at)
        return sorted(out, key=lambda e: e.since)
