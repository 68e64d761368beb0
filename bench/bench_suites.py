"""Speed: each suite alone against a healthy lab, one process, median of N
runs; `pytest --collect-only suites`; and the whole conformance the way scripts/conformance runs
it (-n 4). Targets: every suite at most 15 s (lab3 at most 3 s), the conformance at most 45 s,
collection under 1 s.

Run as root from the repository, against a running embedded lab (with OpenStack):
    .venv/bin/python bench/bench_suites.py [--lab-config lab.toml] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITES = ("lab1", "lab2", "lab3", "lab4", "lab5", "lab6")


def timed(config: Path, *args: str) -> tuple[float, str]:
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
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr.strip()[-200:]
    return time.monotonic() - t0, last.strip("= ")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lab-config", type=Path, default=REPO / "lab.toml")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'what':28s} {'median':>7s} {'min':>6s} {'max':>6s}  last result")
    for what, pytest_args in [
        ("collect-only suites", ("--collect-only", "suites")),
        *((f"{suite} alone, one process", (f"suites/{suite}",)) for suite in SUITES),
        ("conformance -n 4", ("suites", "-n", "4")),
    ]:
        runs = [timed(args.lab_config, *pytest_args) for _ in range(args.runs)]
        seconds = [s for s, _ in runs]
        print(
            f"{what:28s} {statistics.median(seconds):6.1f}s {min(seconds):5.1f}s {max(seconds):5.1f}s  {runs[-1][1]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
