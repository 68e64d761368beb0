"""Figures: the whole lab6 suite (breakage allowed) and the detection matrix on the
embedded lab (with OpenStack). Target: both together under 10 minutes.

Run as root from the repository:  .venv/bin/python bench/bench_breakage.py
Uses a lab of its own and takes it down at the end. Prints the figures and the matrix, and writes
them to reports/bench-breakage.txt.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
LAB_DIR = "/var/tmp/workshop-lab-bench-faults"
CONFIG = REPO / "reports" / "bench-faults-lab.toml"
UP = [
    str(BIN / "workshop"),
    "lab",
    "up",
    "--dir",
    LAB_DIR,
    "--config",
    str(CONFIG),
    "--prefix",
    "wsf",
    "--segment",
    "10.251.4.0/24",
    "--etcd-port-base",
    "28790",
    "--with",
    "openstack",
    "--keystone-port",
    "28000",
    "--neutron-port",
    "28696",
]
DOWN = [str(BIN / "workshop"), "lab", "down", "--dir", LAB_DIR]


def main() -> None:
    from pytest_workshop.config import load_file
    from pytest_workshop.faults import matrix

    CONFIG.parent.mkdir(exist_ok=True)
    subprocess.run(DOWN, capture_output=True)
    subprocess.run(UP, check=True, capture_output=True)
    try:
        t0 = time.monotonic()
        lab6 = subprocess.run(
            [
                str(BIN / "pytest"),
                "-q",
                "-p",
                "no:cacheprovider",
                "--no-allure",
                "--lab-config",
                str(CONFIG),
                "suites/lab6",
                "--allow-breakage",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        lab6_s = time.monotonic() - t0
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory() as work:
            rows, problems = matrix.run(load_file(CONFIG), CONFIG, REPO, Path(work))
        matrix_s = time.monotonic() - t0
    finally:
        subprocess.run(DOWN, capture_output=True)
    lines = [
        f"pytest suites/lab6 --allow-breakage: {lab6_s:.0f} s ({lab6.stdout.strip().splitlines()[-1]})",
        *[f"  {line.strip()}" for line in lab6.stdout.splitlines() if line.strip().startswith(("FAIL ", "ERROR "))],
        f"detection matrix, {len(rows)} scenarios: {matrix_s:.0f} s ({'all detected and restored' if not problems else f'{len(problems)} problem(s)'})",
        f"together: {(lab6_s + matrix_s) / 60:.1f} min (target < 10 min)",
        "",
        matrix.table(rows),
    ]
    text = "\n".join(lines)
    print(text)
    (REPO / "reports" / "bench-breakage.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
