"""Steadiness (the same verdicts at any parallelism): the full conformance against a
healthy lab, N times at -n 4 and once each at -n 1, 2 and 8; pass/fail counts and wall time
per run, and the failing checks. Zero failures is the target. A run that is not green leaves its
whole output in reports/steadiness/.

Run as root from the repository, against a running embedded lab (with OpenStack):
    .venv/bin/python bench/bench_steadiness.py [--lab-config lab.toml] [--runs 10]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = REPO / "reports" / "steadiness"  # the whole output of every run that was not green


def conformance(config: Path, workers: int) -> tuple[float, dict[str, int]]:
    t0 = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--no-allure",
            "--lab-config",
            str(config),
            "suites",
            "-n",
            str(workers),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|error|errors|skipped)", last)}
    # the checklist's FAIL/ERROR lines name the checks: which ones, when a run is not green
    bad = sorted(set(re.findall(r"^  (?:FAIL|ERROR)\s+(LAB\d-\d\d)", result.stdout, re.M)))
    if result.returncode != 0:  # kept, so that a rare failure can be read afterwards
        OUTPUTS.mkdir(parents=True, exist_ok=True)
        (OUTPUTS / f"{time.strftime('%Y%m%dT%H%M%S')}-n{workers}.txt").write_text(result.stdout + result.stderr)
    return time.monotonic() - t0, counts, bad


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lab-config", type=Path, default=REPO / "lab.toml")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    plan = [4] * args.runs + [1, 2, 8]
    bad = 0
    for i, workers in enumerate(plan, start=1):
        seconds, counts, failing = conformance(args.lab_config, workers)
        failures = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
        bad += failures
        print(
            f"run {i:2d}  -n {workers}  {seconds:6.1f} s  "
            + ", ".join(f"{v} {k}" for k, v in counts.items())
            + (f"  ({', '.join(failing)})" if failing else ""),
            flush=True,
        )
    print(f"{len(plan)} runs, {bad} failures or errors in all")


if __name__ == "__main__":
    main()
