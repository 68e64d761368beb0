"""Figures for issue 14 (fleets): lab1+lab3 over N embedded labs at -n N, against one of those labs
alone, in the same bench run, as a ratio (target: at most 3x for 8 labs); and memory per lab.

Brings up its own fleet (prefix wb, segments 10.251.80+, etcd ports 29000+) and takes it down.
Run as root from the repository:
    .venv/bin/python bench/bench_fleet.py [--labs 8] [--runs 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_workshop.lab.fleet import EmbeddedFleet, FleetSpec  # noqa: E402


def timed(*args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/lab1", "suites/lab3", "-q", "-p", "no:cacheprovider", "--no-allure", *args],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr.strip()[-200:]
    return time.monotonic() - t0, last.strip("= ")


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
            print(f"memory: attendee-01 (3 machines) {memory['attendee-01']} MiB; one-machine labs "
                  f"median {statistics.median(small):.0f} MiB (min {min(small)}, max {max(small)})")  # fmt: skip
            one_lab = out / "one"
            one_lab.mkdir()
            (one_lab / "attendee-02.toml").write_text((out / "labs" / "attendee-02.toml").read_text())
            alone: list[float] = []
            everyone: dict[int, list[float]] = {n: [] for n in workers}
            for _ in range(args.runs):
                t, last = timed("--labs", str(one_lab))
                alone.append(t)
                print(f"  one lab (attendee-02)      {t:6.1f} s  {last}")
                for n in workers:
                    t, last = timed("--labs", str(out / "fleet.toml"), "-n", str(n))
                    everyone[n].append(t)
                    print(f"  {args.labs} labs at -n {n:<2}          {t:6.1f} s  {last}")
            a = statistics.median(alone)
            for n, times in everyone.items():
                e = statistics.median(times)
                print(
                    f"lab1+lab3: one lab {a:.1f} s, {args.labs} labs at -n {n} {e:.1f} s: ratio {e / a:.2f} (target <= 3)"
                )
        finally:
            fleet.down()


if __name__ == "__main__":
    main()
