"""The suites against a real embedded lab: healthy, one etcd member down, all down, paused, engine stopped."""

from __future__ import annotations

import time
from pathlib import Path

from pytest_workshop.faults.matrix import verdicts

# Checks that must notice one dead etcd member; every other lab3 check must keep passing.
ONE_MEMBER_DOWN_DETECTED_BY = {"LAB3-01", "LAB3-03", "LAB3-04", "LAB3-14"}


def run_suite(lab, tmp_path: Path, *args: str, timeout: float = 120):
    junit = tmp_path / "junit.xml"
    t0 = time.monotonic()
    result = lab.pytest(*args, f"--junitxml={junit}", timeout=timeout)
    return result, verdicts(junit), time.monotonic() - t0


def test_lab1_and_lab3_pass_on_a_healthy_lab(healthy_lab, tmp_path):
    result, v, _ = run_suite(healthy_lab, tmp_path, "suites/lab1", "suites/lab3")
    assert result.returncode == 0, result.stdout[-3000:]
    assert len([c for c in v if c.startswith("LAB1-")]) >= 12 and len([c for c in v if c.startswith("LAB3-")]) >= 12
    assert set(v.values()) == {"PASS"}, v
    assert "workshop checklist" in result.stdout


def test_same_under_xdist(healthy_lab, tmp_path):
    result, v, _ = run_suite(healthy_lab, tmp_path, "suites/lab1", "suites/lab3", "-n", "2")
    assert result.returncode == 0, result.stdout[-3000:]
    assert set(v.values()) == {"PASS"} and len(v) >= 24


def test_one_etcd_member_killed(healthy_lab, tmp_path):
    healthy_lab.lab.member("etcd", "etcd2").kill()
    result, v, _ = run_suite(healthy_lab, tmp_path, "suites/lab3")
    assert result.returncode == 1
    failed = {c for c, o in v.items() if o == "FAIL"}
    assert failed == ONE_MEMBER_DOWN_DETECTED_BY, v
    assert "hint: start the members that are down" in result.stdout
    assert "127.0.0.1:24792" in result.stdout  # the dead member is named


def test_all_etcd_members_killed_fails_fast_with_hints(healthy_lab, tmp_path):
    for member in healthy_lab.etcd_members():
        member.kill()
    result, v, elapsed = run_suite(healthy_lab, tmp_path, "suites/lab3")
    assert result.returncode == 1
    assert set(v.values()) == {"FAIL"} and len(v) >= 12
    assert "hint: start etcd" in result.stdout
    assert elapsed < 20, f"lab3 took {elapsed:.1f} s with etcd down"


def test_paused_member_fails_within_bound(healthy_lab, tmp_path):
    healthy_lab.lab.member("etcd", "etcd1").pause()
    result, v, elapsed = run_suite(healthy_lab, tmp_path, "suites/lab3")
    assert result.returncode == 1
    assert v["LAB3-01"] == "FAIL" and v["LAB3-03"] == "FAIL"
    assert "did not answer within 5 s ([timeouts] request; hung or paused?)" in result.stdout
    assert elapsed < 60, f"lab3 took {elapsed:.1f} s with a paused member"


def test_all_members_paused_every_check_bounded(healthy_lab, tmp_path):
    for member in healthy_lab.etcd_members():
        member.pause()
    result, v, elapsed = run_suite(healthy_lab, tmp_path, "suites/lab3")
    assert result.returncode == 1
    assert set(v.values()) == {"FAIL"}
    # one session connect (3 endpoints x 3 s) then the cached failure for every check
    assert elapsed < 40, f"lab3 took {elapsed:.1f} s with every member paused"


def test_docker_engine_stopped_fails_fast(healthy_lab, tmp_path):
    healthy_lab.docker_engine().stop()
    result, v, elapsed = run_suite(healthy_lab, tmp_path, "suites/lab1")
    assert result.returncode == 1
    failed = {c for c, o in v.items() if o == "FAIL"}
    # only the kernel check and the OpenStack ones (the test lab has OpenStack) need no engine
    assert failed == {c for c in v if c not in ("LAB1-03", "LAB1-13", "LAB1-14")}, v
    assert v["LAB1-13"] == v["LAB1-14"] == "PASS"
    assert "no engine socket" in result.stdout and "hint: start the Docker engine" in result.stdout
    assert elapsed < 15, f"lab1 took {elapsed:.1f} s with the engine stopped"


def test_docker_engine_paused_fails_within_bound(healthy_lab, tmp_path):
    healthy_lab.docker_engine().pause()
    result, _, elapsed = run_suite(healthy_lab, tmp_path, "suites/lab1")
    assert result.returncode == 1
    assert "did not answer within" in result.stdout
    assert elapsed < 40, f"lab1 took {elapsed:.1f} s with the engine paused"


def test_partitioned_member_is_noticed_and_heals(healthy_lab, tmp_path):
    member = healthy_lab.lab.member("etcd", "etcd3")
    member.partition()
    time.sleep(2)  # election timeout (0.6 s) plus pre-vote: the member notices it is alone
    result, v, _ = run_suite(healthy_lab, tmp_path, "suites/lab3")
    assert result.returncode == 1
    assert {c for c, o in v.items() if o == "FAIL"} == {"LAB3-01", "LAB3-04", "LAB3-14"}, v
    assert "no leader as seen from http://127.0.0.1:24793" in result.stdout
    member.heal()
    # the member rejoins by a new election round: wait until the lab itself says it is healthy
    # (measured 0.5-3 s); running lab3 at once raced it and saw "no leader" once in CI
    healthy_lab.heal()
    healed, v, _ = run_suite(healthy_lab, tmp_path, "suites/lab3")
    assert healed.returncode == 0 and set(v.values()) == {"PASS"}, healed.stdout[-2000:]


def test_lab1_and_lab4_green_at_n4(healthy_lab, tmp_path):
    """Issue 13: a healthy lab passes under parallel load. lab4 at -n 4 used to fail kuryr's
    network create on its read timeout; lab1's logs and networks at -n 8."""
    result, v, _ = run_suite(healthy_lab, tmp_path, "suites/lab1", "suites/lab4", "-n", "4", "--no-allure", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert len([c for c in v if c.startswith("LAB4-")]) == 15 and set(v.values()) == {"PASS"}, v
