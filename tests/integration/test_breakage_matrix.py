"""Proof that every breakage is caught: for each scenario, inject it into the test lab; its
``detected_by`` checks must fail; restore it; they must pass again. Writes the matrix (scenario x
detected, time to detect, time to restore) to reports/breakage-matrix.json and prints it."""

from __future__ import annotations

import json

import pytest

from pytest_workshop.components.waiting import wait_until
from pytest_workshop.faults.matrix import verdicts
from tests.conftest import REPO


# About 8 minutes: the nightly workflow runs it (`workshop matrix` on the conformance lab, and
# `scripts/selftest -m nightly`); .ci/run keeps its 25 minutes for the guide walk.
@pytest.mark.nightly
def test_every_scenario_is_detected_and_restored(healthy_lab, tmp_path):
    from pytest_workshop.config import load_file
    from pytest_workshop.faults import matrix

    rows, problems = matrix.run(load_file(healthy_lab.config), healthy_lab.config, REPO, tmp_path, healthy_lab.heal)
    (REPO / "reports").mkdir(exist_ok=True)
    (REPO / "reports" / "breakage-matrix.json").write_text(json.dumps([r.as_dict() for r in rows], indent=2))
    print("\n" + matrix.table(rows))
    assert len(rows) >= 16, [r.scenario for r in rows]
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("allow_in_config", [False, True])
def test_disruptive_checks_need_config_and_flag(pytester, allow_in_config):
    pytester.makefile(".toml", lab=f'[lab]\nname = "x"\nallow_breakage = {str(allow_in_config).lower()}\n[etcd]\n')
    pytester.makepyfile(
        """
        import pytest
        pytestmark = pytest.mark.workshop_lab("lab6", "Lab 6: breaking", requires=["etcd"])

        @pytest.mark.disruptive
        @pytest.mark.check("LAB6-01", "breaks etcd", component="etcd", hint="none")
        def test_breaks():
            pass
        """
    )
    for flag in ([], ["--allow-breakage"]):
        result = pytester.runpytest_subprocess("-rs", "--no-allure", *flag)
        if allow_in_config and flag:
            result.assert_outcomes(passed=1)
        else:
            result.assert_outcomes(skipped=1)
            expected = "run with --allow-breakage" if allow_in_config else "allow_breakage = true"
            assert expected in result.stdout.str()


def test_lab6_passes_and_locks_keep_other_checks_unharmed(healthy_lab, tmp_path):
    """lab6's disruptive checks next to lab3 under xdist: the lab lock keeps them apart, so lab3
    never sees a fault, and nothing stays injected."""
    from pytest_workshop.config import load_file
    from pytest_workshop.faults import Breaker

    junit = tmp_path / "junit.xml"
    result = healthy_lab.pytest(
        "suites/lab6", "suites/lab3", "-n", "2", "--allow-breakage", "--no-allure", f"--junitxml={junit}", timeout=600
    )
    v = verdicts(junit)
    assert result.returncode == 0, result.stdout[-3000:]
    assert set(v.values()) == {"PASS"} and len([c for c in v if c.startswith("LAB6-")]) >= 10, v
    assert not Breaker(load_file(healthy_lab.config), allowed=True).injected()


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_an_interrupted_run_leaves_no_fault(healthy_lab, tmp_path, how):
    """SIGTERM: the run restores before it exits. SIGKILL: the next run restores first thing."""
    import os
    import signal
    import subprocess
    import sys

    from pytest_workshop.config import load_file
    from pytest_workshop.faults import Breaker

    breaker = Breaker(load_file(healthy_lab.config), allowed=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--lab-config",
            str(healthy_lab.config),
            "-p",
            "no:cacheprovider",
            "--no-allure",
            "suites/lab6",
            "--allow-breakage",
            "--check-ids",
            "LAB6-04",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert wait_until(breaker.injected, 60, step=0.2), "the run never injected its fault"
    os.kill(proc.pid, getattr(signal, how))
    proc.wait(120)
    if how == "SIGKILL":
        assert breaker.injected(), "a killed run cannot restore; the journal must still say so"
        # the next run restores the fault first, and its session sweep removes the dead run's objects
        after = healthy_lab.pytest("suites/lab6", "--allow-breakage", "--check-ids", "LAB6-10,LAB6-12", "--no-allure")
        assert after.returncode == 0, after.stdout[-2000:]
    assert not breaker.injected(), "a fault is still journalled as injected"
    healthy_lab.heal()
    from pytest_workshop.components import docker as docker_component
    from pytest_workshop.run import LABEL_RUN

    cfg = load_file(healthy_lab.config)
    client = docker_component.connect(cfg.docker, cfg.timeouts)
    try:
        left = wait_until(
            lambda: (
                not client.containers.list(all=True, filters={"label": LABEL_RUN}, sparse=True)
                and not client.services.list(filters={"label": LABEL_RUN})
            ),
            20,
            step=0.5,
        )
    finally:
        client.close()
    assert left, "the interrupted run left labelled containers or services behind"
