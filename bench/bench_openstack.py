"""Figures for the DevStack machine: cold `workshop lab up --with openstack`, the
OpenStack part of it step by step, idle memory, and the wall time of `pytest suites/lab4`.

Run as root from the repository:  .venv/bin/python bench/bench_openstack.py
Uses a lab of its own (dir, prefix, ports) and takes it down at the end. Prints the figures and
writes them to reports/bench-openstack.txt. Target: cold up of the openstack part <= 90 s.
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
LAB_DIR = "/var/tmp/workshop-lab-bench-os"
CONFIG = REPO / "reports" / "bench-openstack-lab.toml"
WORKSHOP = [str(BIN / "workshop"), "lab"]
UP = [
    *WORKSHOP,
    "up",
    "--dir",
    LAB_DIR,
    "--config",
    str(CONFIG),
    "--prefix",
    "wso",
    "--segment",
    "10.251.3.0/24",
    "--etcd-port-base",
    "27790",
    "--with",
    "openstack",
    "--keystone-port",
    "27000",
    "--neutron-port",
    "27696",
]
DOWN = [*WORKSHOP, "down", "--dir", LAB_DIR]
ROUNDS = 2


def run(cmd: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode not in ok:
        sys.exit(f"bench: {' '.join(cmd)} exited {r.returncode}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return elapsed, r.stdout


def main() -> None:
    CONFIG.parent.mkdir(exist_ok=True)
    subprocess.run(DOWN, capture_output=True)
    ups, openstack_parts, steps = [], [], ""
    for _ in range(ROUNDS):
        elapsed, out = run(UP)
        ups.append(elapsed)
        line = next(x for x in out.splitlines() if x.strip().startswith("openstack:"))
        steps = line.strip()
        openstack_parts.append(float(line.split("seconds ")[1].split(" s")[0]))
        run(DOWN)
    run(UP)
    try:
        time.sleep(20)  # idle: let start-up work settle
        status = json.loads(run([*WORKSHOP, "status", "--json", "--dir", LAB_DIR])[1])
        devstack_mib = status["openstack"]["rss_mib"]
        node_mib = statistics.mean(n["rss_mib"] for n in status["nodes"])
        results = REPO / "reports" / "bench-allure-results"
        pytest = [
            str(BIN / "pytest"),
            "-p",
            "no:cacheprovider",
            "-q",
            "--lab-config",
            str(CONFIG),
            "suites/lab4",
            f"--alluredir={results}",
            "--workshop-summary",
            str(REPO / "reports" / "bench-summary.json"),
        ]
        lab4 = [run(pytest)[0] for _ in range(3)]
        out = REPO / "reports" / "bench-allure-report"
        report = [
            run(
                [
                    str(BIN / "workshop"),
                    "report",
                    "--results",
                    str(results),
                    "--out",
                    str(out),
                    "--single-file",
                    f"{out}.html",
                    "--lab-config",
                    str(CONFIG),
                ]
            )[0]
            for _ in range(2)
        ]
    finally:
        run(DOWN)
    lines = [
        f"cold `lab up --with openstack` (3 nodes + devstack), median of {ROUNDS}: {statistics.median(ups):.1f} s "
        f"(runs: {', '.join(f'{u:.1f}' for u in ups)})",
        f"  of which the OpenStack part: {statistics.median(openstack_parts):.1f} s (target <= 90 s)",
        f"  last run, cumulative steps: {steps}",
        f"idle memory (RSS): devstack machine {devstack_mib:.0f} MiB; a Swarm node {node_mib:.0f} MiB",
        f"pytest suites/lab4 (15 checks), median of 3: {statistics.median(lab4):.1f} s "
        f"(runs: {', '.join(f'{x:.1f}' for x in lab4)})",
        f"workshop report (folder + single file, Allure 2) on lab4's results: {statistics.median(report):.1f} s",
    ]
    text = "\n".join(lines)
    print(text)
    (REPO / "reports" / "bench-openstack.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
