"""Reports seen from outside, with pytester: default Allure results, labels, summary.json, the
controller-only clean-up under xdist, and redaction of secrets from every output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CANARY = "hunter2-canary-77"
LAB = f'[lab]\nname = "attendee-07"\n[etcd]\nendpoints = ["http://127.0.0.1:1"]\nusername = "root"\npassword = "{CANARY}"\n'

SUITE = f"""
import logging, pytest
pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9: sample", requires=["etcd"])

@pytest.mark.check("LAB9-01", "Passing check", component="etcd", hint="nothing to do")
def test_pass():
    pass

@pytest.mark.check("LAB9-02", "Failing check", component="etcd", hint="turn it off and on again")
def test_fail():
    print("password is {CANARY}")
    logging.getLogger("x").warning("password=%s", "{CANARY}")
    assert "{CANARY}" == "other", "login with {CANARY} failed"

@pytest.mark.check("LAB9-03", "Parametrized by a secret", component="etcd", hint="none")
@pytest.mark.parametrize("password", ["{CANARY}"])
def test_param(password):
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makefile(".toml", lab=LAB)
    return pytester


def results(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (root / "reports" / "allure-results").glob("*-result.json")]


def test_results_summary_and_labels_by_default(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("--junitxml=junit.xml")
    result.assert_outcomes(passed=2, failed=1)
    data = results(suite.path)
    assert sorted(d["name"] for d in data)[:2] == ["LAB9-01 Passing check", "LAB9-02 Failing check"]
    failing = next(d for d in data if d["name"].startswith("LAB9-02"))
    labels = {(x["name"], x["value"]) for x in failing["labels"]}
    assert {
        ("epic", "Lab 9: sample"),
        ("parentSuite", "attendee-07"),
        ("feature", "etcd"),
        ("story", "LAB9-02 Failing check"),
        ("severity", "critical"),
    } <= labels
    assert failing["description"] == "Hint when it fails: turn it off and on again"
    summary = json.loads((suite.path / "reports" / "summary.json").read_text())
    checks = summary["labs"]["attendee-07"]
    assert checks["LAB9-01"]["outcome"] == "PASS"
    assert checks["LAB9-02"] == {**checks["LAB9-02"], "outcome": "FAIL", "hint": "turn it off and on again"}
    categories = json.loads((suite.path / "reports" / "allure-results" / "categories.json").read_text())
    assert categories[0]["name"] == "Lab unreachable"


def test_secrets_appear_nowhere(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess("--junitxml=junit.xml", "-v", "-rA")
    outputs = [result.stdout.str(), result.stderr.str(), (suite.path / "junit.xml").read_text()]
    outputs += [p.read_text(errors="replace") for p in (suite.path / "reports").rglob("*") if p.is_file()]
    assert not [o for o in outputs if CANARY in o]
    assert "test_param[password-redacted]" in result.stdout.str()
    assert "login with ***** failed" in result.stdout.str()


def test_xdist_results_cleaned_once_by_the_controller(suite: pytest.Pytester) -> None:
    stale = suite.path / "reports" / "allure-results" / "stale-result.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    result = suite.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    assert not stale.exists()
    names = sorted(d["name"] for d in results(suite.path))
    assert len(names) == 3 and len(set(names)) == 3, names  # nothing lost, nothing twice
    assert (suite.path / "reports" / "summary.json").is_file()


def test_no_allure_writes_no_results(suite: pytest.Pytester) -> None:
    suite.runpytest_subprocess("--no-allure").assert_outcomes(passed=2, failed=1)
    assert not (suite.path / "reports" / "allure-results").exists()
    assert (suite.path / "reports" / "summary.json").is_file()
