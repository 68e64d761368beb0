"""Declared experiments, seen from outside with pytester: started in the background at a module's
first check, in the declared order, their results reaching the checks, a failure failing exactly
the checks that use it; the checks that collect them run after the module's other checks."""

from __future__ import annotations

import re

import pytest

ETCD_ONLY = '[lab]\nname = "experiments"\n[etcd]\nendpoints = ["http://127.0.0.1:1"]\n'

EXPERIMENTS = """
import threading, time
import pytest
from pytest_workshop.api import WorkshopError, experiment

pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9: sample", requires=["etcd"])
events = []
first_check_started = threading.Event()

@experiment(bound=10, requires="etcd")
def first():
    events.append(("first starts", threading.current_thread().name))
    first_check_started.wait(5)  # runs beside the module's first check
    time.sleep(0.3)
    events.append(("first ends", None))
    return 20

@experiment(bound=10, requires="etcd", after="first")
def second(first):
    events.append(("second starts", None))
    return first.result() + 1

@experiment(bound=10, requires="etcd")
def broken():
    raise WorkshopError("the lab said no", hint="look at the lab")

@pytest.mark.check("LAB9-01", "Uses the first", component="etcd", hint="-")
def test_first(first):
    assert first.result() == 20

@pytest.mark.check("LAB9-02", "Looks at the lab", component="etcd", hint="-")
def test_looks():
    first_check_started.set()
    # already running in the background before any check asked for it
    assert events and events[0][0] == "first starts" and events[0][1] != threading.current_thread().name

@pytest.mark.check("LAB9-03", "Uses the second", component="etcd", hint="-")
def test_second(second):
    assert second.result() == 21
    assert [e for e, _ in events] == ["first starts", "first ends", "second starts"]

@pytest.mark.check("LAB9-04", "Uses the broken one", component="etcd", hint="-")
def test_broken(broken):
    broken.result()

@pytest.mark.check("LAB9-05", "Looks again", component="etcd", hint="-")
def test_looks_again():
    pass
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]])
def test_declared_experiments_run_in_the_background_in_order(pytester: pytest.Pytester, xdist: list[str]) -> None:
    pytester.makefile(".toml", lab=ETCD_ONLY)
    pytester.makepyfile(test_experiments=EXPERIMENTS)
    result = pytester.runpytest_subprocess(*xdist, "-v", "-p", "no:cacheprovider", "--no-allure")
    result.assert_outcomes(passed=4, failed=1)
    out = result.stdout.str()
    assert "FAIL  LAB9-04" in out and "the lab said no" in out, out
    # the checks that collect an experiment run after the others, each group in ID order
    # "test_experiments.py::NAME PASSED", or under xdist "[gw0] [ 20%] PASSED test_experiments.py::NAME"
    verdicts = [line for line in out.splitlines() if re.search(r"\b(PASSED|FAILED)\b", line) and "::" in line]
    order = [re.search(r"test_experiments\.py::(\w+)", line)[1] for line in verdicts if not line.startswith("FAILED")]
    assert order == ["test_looks", "test_looks_again", "test_first", "test_second", "test_broken"], out


def test_an_experiment_is_not_started_for_checks_that_are_not_run(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", lab=ETCD_ONLY)
    pytester.makepyfile(
        test_experiments=EXPERIMENTS.replace("first_check_started.wait(5)", 'open("started", "w").close()')
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--no-allure", "-k", "test_looks_again")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "started").exists()


def test_an_experiment_the_lab_cannot_run_early_starts_in_its_check(pytester: pytest.Pytester) -> None:
    """``early(lab)`` False: nothing runs beside the other checks; the check that needs it waits."""
    pytester.makefile(".toml", lab=ETCD_ONLY)
    pytester.makepyfile(
        test_late="""
import pytest
from pytest_workshop.api import experiment

events = []

@experiment(bound=5, early=lambda lab: False)
def late():
    events.append("late runs")
    return 1

def test_a():
    events.append("a")

def test_b(late):
    assert late.result() == 1

def test_c():
    assert events == ["a", "late runs"]
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--no-allure")
    result.assert_outcomes(passed=3)
