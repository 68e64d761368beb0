"""Choosing checks: by ID (-k, --check-ids), by the guide's step (--step); failures name the step."""

from __future__ import annotations

import pytest

LAB = '[lab]\nname = "stepped"\n[etcd]\nendpoints = ["http://127.0.0.1:1"]\n'

STEPPED = """
import pytest
pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9: sample")

@pytest.mark.check("LAB9-01", "First step's check", step="9.1", component="etcd", hint="do it")
def test_one():
    pass

@pytest.mark.check("LAB9-02", "Second step's check", step="9.2", component="etcd", hint="start the widget")
def test_two():
    assert 1 == 2, "the widget is broken"

@pytest.mark.check("LAB9-03", "Second step's other check", step="9.2", component="etcd", hint="-")
def test_three():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".toml", lab=LAB)
    pytester.makepyfile(test_suite=STEPPED)
    return pytester


def test_minus_k_selects_a_check_by_its_id(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-k", "LAB9-03", "--no-allure")
    result.assert_outcomes(passed=1, deselected=2)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]])
def test_step_runs_that_steps_checks(suite: pytest.Pytester, xdist: list[str]) -> None:
    result = suite.runpytest_subprocess("--step", "9.2", "--no-allure", "-p", "no:cacheprovider", *xdist)
    result.assert_outcomes(passed=1, failed=1)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]])
def test_a_step_no_check_has_is_refused(suite: pytest.Pytester, xdist: list[str]) -> None:
    result = suite.runpytest_subprocess("--step", "9.7", "--no-allure", "-p", "no:cacheprovider", *xdist)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--step: 9.7 is not a step of the suites given*"])


def test_a_step_that_is_not_written_as_one_is_refused(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--step", "nine", "--no-allure")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_failure_names_its_step(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--no-allure")
    result.stdout.fnmatch_lines(["*hint: start the widget (guide step 9.2: suites/lab9/README.md)*"])


def test_a_step_of_another_lab_is_refused_at_collection(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", lab=LAB)
    pytester.makepyfile(test_suite=STEPPED.replace('step="9.1"', 'step="3.1"'))
    result = pytester.runpytest("--no-allure")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*LAB9-01's step='3.1' is not a step of lab 9*"])
