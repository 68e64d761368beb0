"""Figures (the netns connector): the wall time of `pytest suites/lab3` to its
verdict with one etcd member's machine cut off (node3 partitioned: connects to it hang until their
timeout), and on a healthy lab. Median of N runs each.

Run as root from the repository, against a running embedded lab:
    .venv/bin/python bench/bench_partitioned_lab3.py [--lab-config lab.toml] [--runs 5]
Restarts nothing; partitions node3 and heals it again (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def lab3_seconds(config: Path) -> tuple[float, str]:
    t0 = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--no-allure",
            "--lab-config",
            str(config),
            "suites/lab3",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return time.monotonic() - t0, result.stdout.strip().splitlines()[-1]


def main() -> None:
    from pytest_workshop.config import load_file
    from pytest_workshop.lab import EmbeddedLab

    parser = argparse.ArgumentParser()
    parser.add_argument("--lab-config", type=Path, default=REPO / "lab.toml")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    control = load_file(args.lab_config).control or ""
    lab = EmbeddedLab(Path(control.removeprefix("embedded:")))
    node = lab.member("node", "node3")
    healthy = [lab3_seconds(args.lab_config) for _ in range(args.runs)]
    node.partition()
    try:
        time.sleep(3)  # if node3 held the leader, the others elect a new one first (1-2 s)
        cut = [lab3_seconds(args.lab_config) for _ in range(args.runs)]
    finally:
        node.heal()
    print(f"pytest suites/lab3, median of {args.runs}:")
    print(f"  healthy lab:            {statistics.median(t for t, _ in healthy):.2f} s  ({healthy[-1][1]})")
    print(f"  node3 partitioned:      {statistics.median(t for t, _ in cut):.2f} s  ({cut[-1][1]})")


if __name__ == "__main__":
    main()
