"""Processes the lab starts: recorded with pid, start time and argv so we only ever signal our own."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from pytest_workshop import processes
from pytest_workshop.components.waiting import wait_for, wait_until
from pytest_workshop.errors import LabError

T = TypeVar("T")


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    argv: tuple[str, ...]
    start_ticks: int
    log: str

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["argv"] = list(self.argv)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ProcessRecord:
        return cls(d["name"], int(d["pid"]), tuple(d["argv"]), int(d["start_ticks"]), d["log"])


def start_ticks(pid: int) -> int:
    return processes.start_ticks(pid) or -1


def is_ours(rec: ProcessRecord) -> bool:
    """Same pid, same start time, same executable: safe to signal. Zombies count as gone.

    The executable is /proc/PID/exe, not the command line's first word: a daemon may retitle
    itself (oslo.service's setproctitle: "neutron-ovn-agent: master process [...]")."""
    if not processes.is_alive(rec.pid, rec.start_ticks):
        return False
    try:
        cmdline = Path(f"/proc/{rec.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if cmdline and cmdline[0].decode(errors="replace") == rec.argv[0]:
        return True
    try:
        exe = os.readlink(f"/proc/{rec.pid}/exe")
    except OSError:
        return False
    wanted = shutil.which(rec.argv[0]) or rec.argv[0]
    return exe == os.path.realpath(wanted)


def is_paused(rec: ProcessRecord) -> bool:
    found = processes.stat(rec.pid)
    return found is not None and found.state == "T"


def spawn(
    name: str, argv: list[str], log: Path, uid: int | None = None, env: dict[str, str] | None = None
) -> ProcessRecord:
    """Start a daemon in its own session (Ctrl-C in the terminal must not reach it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
    return ProcessRecord(name, proc.pid, tuple(argv), start_ticks(proc.pid), str(log))


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (started by an earlier `workshop lab up`): init reaps it


def signal_process(rec: ProcessRecord, sig: int) -> bool:
    if not is_ours(rec):
        return False
    os.kill(rec.pid, sig)
    return True


def stop(rec: ProcessRecord, grace: float = 10.0) -> bool:
    """SIGCONT (a paused process cannot exit), SIGTERM, wait, then SIGKILL. True if it was running."""
    if not is_ours(rec):
        _reap(rec.pid)
        return False
    os.kill(rec.pid, signal.SIGCONT)
    os.kill(rec.pid, signal.SIGTERM)
    if not _gone_within(rec, grace):
        kill(rec)
    return True


def kill(rec: ProcessRecord) -> bool:
    if not signal_process(rec, signal.SIGKILL):
        return False
    _gone_within(rec, 2.0)
    return True


def _gone_within(rec: ProcessRecord, seconds: float) -> bool:
    """Reap (if it is our child) and wait until the process is gone; False if it is still there."""

    def gone() -> bool:
        _reap(rec.pid)
        return not is_ours(rec)

    return bool(wait_until(gone, seconds, step=0.02))


def rss_kib(rec: ProcessRecord) -> int:
    try:
        for line in Path(f"/proc/{rec.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_started(
    what: str,
    predicate: Callable[[], T],
    timeout: float,
    hint: str,
    step: float = 0.01,
    abort: Callable[[], str | None] | None = None,
) -> T:
    """wait_for for the lab's own start-up: a LabError saying ``what`` did not happen, with ``hint``
    (the log to read); the state it ended in is in that log, not in the message."""
    return wait_for(what, predicate, timeout, step=step, error=LabError, observe=lambda: "", hint=hint, abort=abort)
