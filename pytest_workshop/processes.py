"""Who a process is: its pid *and* its start time, read from /proc once, here.

A pid alone is reused by the kernel: "is pid 4242 still the run that injected this fault?" needs
the start time too. The lab's own processes (lab/process.py), a run's registry entry (run.py) and
the fault journal (faults/journal.py) all ask through this module. It imports nothing of the
project, so every layer may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcStat:
    state: str  # R, S, D, T (stopped), Z (zombie), X (dead), ...
    start_ticks: int  # since boot, in clock ticks: with the pid, a process's identity


def stat(pid: int) -> ProcStat | None:
    """/proc/<pid>/stat's state and start time; None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # Fields counted after the ')' that closes the command name (which may itself hold spaces).
    fields = text.rsplit(")", 1)[1].split()
    return ProcStat(fields[0], int(fields[19]))


def start_ticks(pid: int) -> int | None:
    found = stat(pid)
    return found.start_ticks if found else None


def is_alive(pid: int, start: int | None = None) -> bool:
    """The process runs (not a zombie) and, when ``start`` is known, is the same one as then."""
    found = stat(pid)
    if found is None or found.state in ("Z", "X"):
        return False
    return start is None or found.start_ticks == start
