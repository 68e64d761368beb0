"""Figures for fleets: lab1+lab3 over N embedded labs at -n N, against one of those labs
alone, in the same bench run, as a ratio (target: at most 3x for 8 labs); and memory per lab. It
also accounts for the CPU: the machine's (labs and checks) and the checks' own, since on one
machine the labs' engines share the cores with the checks and set a floor under the wall time.

Brings up its own fleet (prefix wb, segments 10.251.80+, etcd ports 29000+) and takes it down.
Run as root from the repository:
    .venv/bin/python bench/bench_fleet.py [--labs 8] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_workshop.lab.fleet import EmbeddedFleet, FleetSpec  # noqa: E402


def busy_cpu_seconds() -> float:
    """CPU time the whole machine spent busy since boot (every process: labs and checks alike)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    wall: float
    machine_cpu: float  # every process on the machine: the labs' engines and etcd, and the checks
    checks_cpu: float  # pytest and its workers only (what a controller apart from the labs would spend)
    last: str


def timed(*args: str) -> Run:
    t0, busy0, own0 = time.monotonic(), busy_cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites/lab1",
            "suites/lab3",
            "-q",
            "-p",
            "no:cacheprovider",
            "--no-allure",
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall, own = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    checks = own.ru_utime + own.ru_stime - own0.ru_utime - own0.ru_stime
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr.strip()[-200:]
    return Run(wall, busy_cpu_seconds() - busy0, checks, last.strip("= "))


def describe(run: Run) -> str:
    return f"{run.wall:6.1f} s  {run.machine_cpu:5.1f} CPU-s (checks {run.checks_cpu:4.1f})  {run.last}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labs", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="*", default=None, help="-n values to compare (default: --labs)")
    args = parser.parse_args()
    workers = args.workers or [args.labs]
    fleet = EmbeddedFleet(Path("/var/tmp/workshop-fleet-bench"))
    fleet.down()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        up = fleet.up(FleetSpec(args.labs, multi_node=1, prefix="wb", segment_base=80, etcd_port_base=29000), out)
        try:
            print(f"fleet of {args.labs} up in {up['seconds']} s")
            memory = fleet.memory_mib()
            small = [mib for name, mib in memory.items() if name != "attendee-01"]
            print(
                f"memory: attendee-01 (3 machines) {memory['attendee-01']} MiB; one-machine labs "
                f"median {statistics.median(small):.0f} MiB (min {min(small)}, max {max(small)})"
            )
            # the reference is the most common kind of lab: one machine, reached on its Unix socket
            reference = f"attendee-{args.labs:02d}"
            one_lab = out / "one"
            one_lab.mkdir()
            (one_lab / f"{reference}.toml").write_text((out / "labs" / f"{reference}.toml").read_text())
            alone: list[Run] = []
            everyone: dict[int, list[Run]] = {n: [] for n in workers}
            for _ in range(args.runs):
                run = timed("--labs", str(one_lab))
                alone.append(run)
                print(f"  one lab ({reference})      {describe(run)}")
                for n in workers:
                    run = timed("--labs", str(out / "fleet.toml"), "-n", str(n))
                    everyone[n].append(run)
                    print(f"  {args.labs} labs at -n {n:<2}          {describe(run)}")
            a = statistics.median(r.wall for r in alone)
            cores = os.cpu_count() or 1
            for n, runs in everyone.items():
                e = statistics.median(r.wall for r in runs)
                cpu = statistics.median(r.machine_cpu for r in runs)
                checks = statistics.median(r.checks_cpu for r in runs)
                print(
                    f"lab1+lab3: one lab {a:.1f} s, {args.labs} labs at -n {n} {e:.1f} s: ratio {e / a:.2f} (target <= 3)"
                )
                # On one machine the labs and the checks share the cores: the run cannot be shorter
                # than all that CPU spread over them. A controller apart from the labs spends only
                # the checks' share.
                print(
                    f"  CPU: {cpu:.1f} CPU-s on {cores} cores (floor {cpu / cores:.1f} s = {cpu / cores / a:.2f}x); "
                    f"the checks {checks:.1f} CPU-s, the labs {cpu - checks:.1f}"
                )
        finally:
            fleet.down()


if __name__ == "__main__":
    main()
