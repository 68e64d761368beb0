"""A fleet run (--labs), seen from outside with pytester: every check once per lab, the lab in its
id, per-lab verdicts, the fleet table, summary.json, bad inventories, shards, and xdist units.

The checks are synthetic and touch no component (a lab's etcd endpoint is never contacted): this
tests the plugin's fleet policy alone; tests/integration/test_fleet.py runs real labs."""

from __future__ import annotations

import json

import pytest

SUITE = """
import os, pytest
pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9: sample", requires=["etcd"])

@pytest.mark.check("LAB9-01", "The lab's name is known", component="etcd", hint="nothing to do")
def test_named(lab):
    with open("seen.log", "a") as f:
        f.write(f"LAB9-01 {lab.name} {os.environ.get('PYTEST_XDIST_WORKER', '-')}\\n")

@pytest.mark.check("LAB9-02", "The lab is not the broken one", component="etcd", hint="fix attendee-02")
def test_not_broken(lab):
    assert lab.name != "attendee-02", f"{lab.name} is the broken one"
"""

FLEET = """
[defaults.etcd]
endpoints = ["http://{address}:1"]
username = "root"
password = "{password}"

[labs.attendee-01]
address = "127.0.0.1"
password = "canary-one-pw"

[labs.attendee-02]
address = "127.0.0.2"
password = "canary-two-pw"

[labs.attendee-03]
address = "127.0.0.3"
password = "canary-three-pw"
"""


@pytest.fixture
def fleet(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_lab9=SUITE)
    pytester.makefile(".toml", fleet=FLEET)
    return pytester


def test_every_check_runs_once_per_lab_and_names_it(fleet: pytest.Pytester) -> None:
    result = fleet.runpytest("--labs", "fleet.toml", "--no-allure", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        [
            "fleet: 3 labs from *fleet.toml: attendee-01, attendee-02, attendee-03",
            # a line per cause of a lab that did not pass
            "attendee-02: FAIL LAB9-02[[]attendee-02[]] The lab is not the broken one: "
            "attendee-02 is the broken one; hint: fix attendee-02",
        ]
    )
    # the fleet table: worst lab first, per-suite counts, the failing check IDs
    result.stdout.fnmatch_lines(
        [
            "*= fleet =*",
            "lab * lab9  failing",
            "attendee-02 * 1/2  LAB9-02",
            "attendee-01 * 2/2  none",
            "2 of 3 labs pass every check",
        ]
    )
    out = result.stdout.str()
    assert "canary-" not in out, "an inventory password reached the terminal"
    assert (fleet.path / "seen.log").read_text().count("LAB9-01") == 3
    summary = json.loads((fleet.path / "reports" / "summary.json").read_text())
    assert sorted(summary["labs"]) == ["attendee-01", "attendee-02", "attendee-03"]
    assert summary["labs"]["attendee-02"]["LAB9-02"]["outcome"] == "FAIL"
    assert summary["labs"]["attendee-01"]["LAB9-02"]["outcome"] == "PASS"
    assert "canary-" not in json.dumps(summary)


def test_the_environment_variable_names_the_fleet(fleet: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSHOP_LABS", str(fleet.path / "fleet.toml"))
    fleet.runpytest("--co", "-q").stdout.fnmatch_lines(["*test_named[[]attendee-03[]]"])


def test_a_bad_lab_in_the_fleet_stops_the_run_before_anything_runs(fleet: pytest.Pytester) -> None:
    fleet.makefile(
        ".toml", fleet=FLEET.replace('address = "127.0.0.3"', 'address = "127.0.0.3"\nswarm = { nodes = 0 }')
    )
    result = fleet.runpytest("--labs", "fleet.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fleet.toml: lab attendee-03: swarm.nodes: expected a whole number*(fix: *"])
    assert not (fleet.path / "seen.log").exists()
    assert "Traceback" not in result.stderr.str()


def test_labs_and_lab_config_together_are_refused(fleet: pytest.Pytester) -> None:
    fleet.makefile(".toml", lab="[etcd]\n")
    result = fleet.runpytest("--labs", "fleet.toml", "--lab-config", "lab.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--lab-config*given together with --labs*"])


def test_shards_split_the_fleet_and_cover_it(fleet: pytest.Pytester) -> None:
    seen = []
    for k in (1, 2):
        result = fleet.runpytest("--labs", "fleet.toml", "--labs-shard", f"{k}/2", "--co", "-q")
        seen += [line.split("[")[1].rstrip("]") for line in result.stdout.lines if "test_named[" in line]
    assert sorted(seen) == ["attendee-01", "attendee-02", "attendee-03"]


def test_under_xdist_a_labs_module_stays_on_one_worker(fleet: pytest.Pytester) -> None:
    """A unit is a module of one lab: its module set-ups are built once for that lab."""
    result = fleet.runpytest_subprocess("--labs", "fleet.toml", "-n", "3", "--no-allure", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, failed=1)
    lines = [line.split() for line in (fleet.path / "seen.log").read_text().splitlines()]
    assert sorted(lab for _, lab, _ in lines) == ["attendee-01", "attendee-02", "attendee-03"]
    assert len({worker for _, _, worker in lines}) > 1, "the labs did not run in parallel"


def comparable(summary: dict) -> dict:
    """A summary without what differs between runs of the same checks (ids, times)."""
    return {
        "totals": summary["totals"],
        "labs": {
            lab: {cid: {k: v for k, v in c.items() if k != "duration"} for cid, c in checks.items()}
            for lab, checks in summary["labs"].items()
        },
    }


def test_two_shards_merged_give_the_summary_of_one_run(fleet: pytest.Pytester) -> None:
    from pytest_workshop.cli import main

    fleet.runpytest("--labs", "fleet.toml", "--no-allure", "--workshop-summary=whole/summary.json")
    for k in (1, 2):
        fleet.runpytest(
            "--labs", "fleet.toml", "--labs-shard", f"{k}/2", "--no-allure", f"--workshop-summary=shard{k}/summary.json"
        )
    assert main(["report", "--merge", "shard1", "shard2", "--into", "merged", "--labs", "fleet.toml"]) == 0
    whole = json.loads((fleet.path / "whole" / "summary.json").read_text())
    merged = json.loads((fleet.path / "merged" / "summary.json").read_text())
    assert comparable(merged) == comparable(whole)
    page = (fleet.path / "merged" / "fleet.html").read_text()
    assert "2 of 3 labs pass every check" in page and "canary-" not in page
    # the same lab in two shards is refused: they were cut from different inventories
    assert main(["report", "--merge", "shard1", "shard1", "--into", "again"]) == 4


def test_a_fleet_run_writes_fleet_html_beside_its_summary(fleet: pytest.Pytester) -> None:
    fleet.runpytest("--labs", "fleet.toml", "--no-allure")
    page = (fleet.path / "reports" / "fleet.html").read_text()
    assert "<script src" not in page and "http" not in page.replace("http-equiv", ""), "the page must need no network"
    first_row = page[page.index("<tbody>") :].split("<tr", 2)[1]
    assert 'data-lab="attendee-02"' in first_row and 'data-failing="1"' in first_row  # worst first
    assert 'data-hint="fix attendee-02"' in page and "attendee-02 is the broken one" in page


def test_a_shard_that_holds_no_lab_runs_nothing_and_says_so(fleet: pytest.Pytester) -> None:
    from pytest_workshop.cli import main

    # a lab.toml in the directory is the trap: the shard must not check it instead
    fleet.makefile(".toml", lab='[lab]\nname = "the-runners-own"\n[etcd]\nendpoints = ["http://127.0.0.1:1"]\n')
    result = fleet.runpytest(
        "--labs", "fleet.toml", "--labs-shard", "4/4", "--no-allure", "--workshop-summary=shard4/summary.json"
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["fleet: shard 4/4 of *fleet.toml holds no lab: nothing to run"])
    out = result.stdout.str()
    assert "the-runners-own" not in out and "passed" not in out and "failed" not in out, out
    # its (empty) summary merges with the others' like any shard's
    for k in (1, 2, 3):
        fleet.runpytest(
            "--labs", "fleet.toml", "--labs-shard", f"{k}/4", "--no-allure", f"--workshop-summary=shard{k}/summary.json"
        )
    shards = ["shard1", "shard2", "shard3", "shard4"]
    assert main(["report", "--merge", *shards, "--into", "merged", "--labs", "fleet.toml"]) == 0
    assert len(json.loads((fleet.path / "merged" / "summary.json").read_text())["labs"]) == 3


DOWN_SUITE = """
import pytest
from pytest_workshop.api import CheckFailed
pytestmark = pytest.mark.workshop_lab("lab9", "Lab 9: sample")

def down(lab):
    if lab.name == "attendee-02":
        raise CheckFailed("etcd: no endpoint answered", hint="start etcd")

@pytest.mark.check("LAB9-01", "One", component="etcd", hint="h", step="9.1")
def test_one(lab):
    down(lab)

@pytest.mark.check("LAB9-02", "Two", component="etcd", hint="h", step="9.2")
def test_two(lab):
    down(lab)

@pytest.mark.check("LAB9-03", "Three", component="etcd", hint="h", step="9.3")
def test_three(lab):
    down(lab)
"""


def test_a_lab_down_for_one_cause_is_one_line_in_a_fleet_run(fleet: pytest.Pytester) -> None:
    (fleet.path / "test_lab9.py").write_text(DOWN_SUITE)
    result = fleet.runpytest("--labs", "fleet.toml", "--no-allure", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, failed=3)
    out = result.stdout.str()
    lines = [line for line in out.splitlines() if line.startswith("attendee-02:")]
    assert lines == [
        "attendee-02: 3 checks FAIL (LAB9-01, LAB9-02, LAB9-03): etcd: no endpoint answered; hint: start etcd"
    ]
    assert "FAILURES" not in out and "short test summary" not in out, out
    # asked for, pytest's own sections are there
    again = fleet.runpytest("--labs", "fleet.toml", "--no-allure", "-p", "no:cacheprovider", "-rf", "--tb=short")
    assert "short test summary" in again.stdout.str() and "FAILURES" in again.stdout.str()


def test_the_same_skip_over_many_labs_is_one_line(fleet: pytest.Pytester) -> None:
    fleet.makepyfile(
        test_docker_part="""
import pytest
pytestmark = pytest.mark.workshop_lab("lab8", "Lab 8: sample")

@pytest.mark.check("LAB8-01", "Docker", component="docker", hint="h")
def test_docker():
    pass
"""
    )
    out = fleet.runpytest("--labs", "fleet.toml", "--no-allure", "-p", "no:cacheprovider").stdout.str()
    skips = [line for line in out.splitlines() if line.startswith("SKIP")]
    assert skips == ["SKIP LAB8-01 on 3 lab(s) (attendee-01, attendee-02, attendee-03): this lab has no docker"], out
