"""`workshop check --watch` while an attendee works: what it costs the lab machine per minute
(CPU seconds of the watch, its rounds), and how soon after the step is done it says so.

A bare lab of its own (no OpenStack), the watch on step 3.1 (etcd's cluster, not started yet) for
a minute, then the step's commands as the guide says, then the time until the watch ends green.
Run as root from the repository:
    .venv/bin/python bench/bench_watch.py [--seconds 60] [--every 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_workshop.guide import step  # noqa: E402
from pytest_workshop.guide.walk import run_step  # noqa: E402
from pytest_workshop.lab import EmbeddedLab, LabSettings  # noqa: E402
from pytest_workshop.lab.guide_machines import GuideMachines  # noqa: E402

STATE = Path("/var/tmp/workshop-lab-bench-watch")


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=5.0)
    args = parser.parse_args()
    config = Path(tempfile.mkdtemp()) / "lab.toml"
    lab = EmbeddedLab(STATE)
    lab.down()
    lab.up(
        LabSettings(name="bench-watch", prefix="wsw", segment="10.251.6.0/24", etcd_port_base=27890, bare=True), config
    )
    try:
        argv = [sys.executable, "-m", "pytest_workshop.cli", "check", "lab3", "--step", "3.1", "--watch"]
        argv += ["--every", str(args.every), "--lab-config", str(config)]
        watch = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(args.seconds)
        used = cpu_of(watch.pid)
        per_minute = used * 60 / args.seconds
        print(f"watch of a red step, every {args.every:g} s, for {args.seconds:.0f} s: {used:.1f} CPU s")
        print(f"  {per_minute:.1f} CPU seconds per minute: {100 * per_minute / 60:.1f} % of one core")
        t0 = time.monotonic()
        run_step(step("3.1", REPO / "suites"), GuideMachines(STATE, config, REPO).run_on, {})
        done = time.monotonic()
        out, _ = watch.communicate(timeout=120)
        print(f"step 3.1 typed in {done - t0:.1f} s; the watch said green {time.monotonic() - done:.1f} s later")
        print(f"  rounds shown: {out.count('== step 3.1')}, exit {watch.returncode}")
    finally:
        lab.down()


if __name__ == "__main__":
    main()
