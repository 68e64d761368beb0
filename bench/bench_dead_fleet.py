"""Figures for a fleet whose labs are all down (VMs not booted yet): lab1+lab3 over N labs whose
engines and etcd refuse connections, at -n 8. Wall time, CPU of the run (controller and workers)
per failing check, and lines printed (before pytest's final summary, and in all).

Every lab is loopback addresses with nothing listening (127.0.0.1, ports that refuse): nothing is
brought up. Run from the repository:
    .venv/bin/python bench/bench_dead_fleet.py [--labs 200] [-n 8]
"""

from __future__ import annotations

import argparse
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released: connecting to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fleet_file(path: Path, labs: int) -> None:
    docker, etcd = closed_port(), closed_port()
    lines = [
        "[defaults.docker]",
        f'host = "tcp://127.0.0.1:{docker}"',
        "[defaults.etcd]",
        f'endpoints = ["http://127.0.0.1:{etcd}"]',
        "[defaults.timeouts]",
        "request = 2.0",
    ]
    for i in range(1, labs + 1):
        lines += [f"[labs.attendee-{i:03d}]", 'address = "127.0.0.1"']
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labs", type=int, default=200)
    parser.add_argument("-n", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Path(tmp) / "fleet.toml"
        fleet_file(fleet, args.labs)
        argv = [
            sys.executable, "-m", "pytest", "suites/lab1", "suites/lab3",
            "--labs", str(fleet), "-n", str(args.n), "-p", "no:cacheprovider", "--no-allure",
            f"--workshop-summary={tmp}/summary.json", "-k", "not openstack",
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=3600).stdout
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    counts = dict((k, int(v)) for v, k in re.findall(r"(\d+) (failed|passed|skipped|error)", out.splitlines()[-1]))
    failing = counts.get("failed", 0) + counts.get("error", 0)
    lines = out.splitlines()
    summary_at = next((i for i, line in enumerate(lines) if "short test summary info" in line), len(lines))
    print(f"{args.labs} refusing labs, lab1+lab3, -n {args.n}: {out.splitlines()[-1].strip('= ')}")
    print(f"  wall {wall:.1f} s; CPU {cpu:.1f} s, {1000 * cpu / max(failing, 1):.1f} ms per failing check")
    print(f"  lines printed: {summary_at} before the final summary, {len(lines)} in all")
    print(f"  per failing lab: {summary_at / args.labs:.1f} lines before the final summary")


if __name__ == "__main__":
    main()
