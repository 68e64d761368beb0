"""Figures: cold `workshop lab up` (3 and 5 nodes), suite wall times, collection time, memory.

Run as root from the repository:  .venv/bin/python bench/bench_foundation.py
Uses a lab of its own (its own dir, ports, bridge and ranges) so it never touches yours, and
takes it down at the end. Prints the figures and writes them to reports/bench-foundation.txt.
Targets: lab3 <= 3 s median, collection < 1 s.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LAB_DIR = "/var/tmp/workshop-lab-bench"
CONFIG = REPO / "reports" / "bench-lab.toml"
UP = [
    str(BIN / "workshop"),
    "lab",
    "up",
    "--dir",
    LAB_DIR,
    "--config",
    str(CONFIG),
    "--etcd-port-base",
    "26790",
    "--prefix",
    "wsb",
]
DOWN = [str(BIN / "workshop"), "lab", "down", "--dir", LAB_DIR]


def timed(cmd: list[str], ok: tuple[int, ...] = (0,)) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode not in ok:
        sys.exit(f"bench: {' '.join(cmd)} exited {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return elapsed


def main() -> None:
    CONFIG.parent.mkdir(exist_ok=True)
    subprocess.run(DOWN, capture_output=True)
    ups5 = []
    for _ in range(2):
        ups5.append(timed([*UP, "--nodes", "5"]))
        timed(DOWN)
    ups = []
    for _ in range(3):
        ups.append(timed(UP))
        timed(DOWN)
    timed(UP)
    pytest = [str(BIN / "pytest"), "-p", "no:cacheprovider", "-q", "--lab-config", str(CONFIG)]
    try:
        timed([*pytest, "suites/lab3"])  # warm-up (page cache, image build already done by up)
        lab3 = [timed([*pytest, "suites/lab3"]) for _ in range(5)]
        lab1 = [timed([*pytest, "suites/lab1"]) for _ in range(3)]
        lab2 = [timed([*pytest, "suites/lab2"]) for _ in range(3)]
        both_xdist = [timed([*pytest, "-n", "2", "suites/lab1", "suites/lab3"]) for _ in range(3)]
        collect = [timed([*pytest, "--collect-only", "suites"]) for _ in range(5)]
        status = json.loads(
            subprocess.run(
                [str(BIN / "workshop"), "lab", "status", "--dir", LAB_DIR, "--json"], capture_output=True, text=True
            ).stdout
        )
    finally:
        subprocess.run(DOWN, capture_output=True)
    node_rss = [n["rss_mib"] for n in status["nodes"]]
    lines = [
        f"cold `workshop lab up`, 3 nodes (3 runs) median {statistics.median(ups):.2f} s  (runs: {', '.join(f'{x:.2f}' for x in ups)})",
        f"cold `workshop lab up`, 5 nodes (2 runs) median {statistics.median(ups5):.2f} s  (runs: {', '.join(f'{x:.2f}' for x in ups5)})",
        f"`pytest suites/lab3`, healthy (5 runs)  median {statistics.median(lab3):.2f} s  (runs: {', '.join(f'{x:.2f}' for x in lab3)})  target <= 3 s",
        f"`pytest suites/lab1`, healthy (3 runs)  median {statistics.median(lab1):.2f} s",
        f"`pytest suites/lab2`, healthy (3 runs)  median {statistics.median(lab2):.2f} s",
        f"`pytest -n 2 suites/lab1 suites/lab3`   median {statistics.median(both_xdist):.2f} s",
        f"`pytest --collect-only suites` (5 runs) median {statistics.median(collect):.2f} s  target < 1 s",
        f"memory after the suites, per node (dockerd, containerd, etcd member): {', '.join(f'{x} MiB' for x in node_rss)}",
    ]
    text = "\n".join(lines)
    print(text)
    (REPO / "reports" / "bench-foundation.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
