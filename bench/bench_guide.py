"""The guides as an attendee meets them: a bare lab (the workshop's starting state), every step
of labs 1-6 typed from the guides' own text; per step, how long its commands took and how long
its check took to answer green right after (what an attendee waits for), and the whole walk.

Run as root from the repository (it brings up and takes down a bare lab of its own):
    .venv/bin/python bench/bench_guide.py [--without-openstack]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_workshop.guide import guides  # noqa: E402
from pytest_workshop.guide.walk import run_step  # noqa: E402
from pytest_workshop.lab import EmbeddedLab, LabSettings  # noqa: E402
from pytest_workshop.lab.guide_machines import GuideMachines  # noqa: E402

STATE = Path("/var/tmp/workshop-lab-bench-guide")
GREEN_WITHIN_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--without-openstack", action="store_true")
    args = parser.parse_args()
    config = Path(tempfile.mkdtemp()) / "lab.toml"
    lab = EmbeddedLab(STATE)
    settings = LabSettings(
        name="bench-guide",
        prefix="wsg",
        segment="10.251.3.0/24",
        etcd_port_base=27790,
        bare=True,
        openstack=not args.without_openstack,
        keystone_port=27000,
        neutron_port=27696,
    )
    lab.down()
    t0 = time.monotonic()
    lab.up(settings, config)
    print(f"bare lab up in {time.monotonic() - t0:.1f} s")
    machines, saved = GuideMachines(STATE, config, REPO), {}
    print(f"{'step':6s} {'commands':>9s} {'green after':>12s}  title")
    walk0 = time.monotonic()
    try:
        for steps in guides(REPO / "suites").values():
            for step in steps:
                if not machines.walks(step):
                    print(f"{step.number:6s} {'-':>9s} {'-':>12s}  {step.title} (not on this lab)")
                    continue
                t = time.monotonic()
                run_step(step, machines.run_on, saved)
                commands = time.monotonic() - t
                t = time.monotonic()
                while machines.check(step, "--no-allure", "-q").returncode != 0:
                    if time.monotonic() - t > GREEN_WITHIN_S:
                        raise SystemExit(f"step {step.number}'s check not green {GREEN_WITHIN_S:g} s after it")
                print(f"{step.number:6s} {commands:8.1f}s {time.monotonic() - t:11.1f}s  {step.title}", flush=True)
        print(f"whole walk: {time.monotonic() - walk0:.1f} s")
    finally:
        lab.down()


if __name__ == "__main__":
    main()
