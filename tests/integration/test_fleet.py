"""A fleet of real embedded labs (`workshop lab up --fleet 4`, one of them three machines): one run
of lab1, lab2 and lab3 over all of it, with one lab broken on purpose in two ways by an
instructor's `workshop break --labs ... --lab ...`. The healthy labs pass; the broken one fails
exactly what its two faults explain, with hints; the fleet table, summary.json, fleet.html and the
Allure report (grouped by lab) say so; two shards of lab1+lab3, merged, say the same as the run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_workshop.fleet import read_fleet
from pytest_workshop.lab.fleet import EmbeddedFleet, FleetSpec

REPO = Path(__file__).resolve().parents[2]
FLEET_DIR = Path(os.environ.get("WORKSHOP_TEST_FLEET_DIR", "/var/tmp/workshop-fleet-tests"))
# beside an instructor's fleet (wf*, 10.251.21+, 27010+) and the test lab: other names, segments, ports
# attendee-01: three machines; attendee-02: its engine and its etcd over TLS with client certificates;
# attendee-03: machine and engine over SSH
SPEC = FleetSpec(4, multi_node=1, tls=1, ssh=1, prefix="wt", segment_base=60, etcd_port_base=28000)
BROKEN = "attendee-04"
# docker-engine-stopped: everything on the engine (lab1 but LAB1-03, which reads the client's
# configuration, and all of lab2, whose Swarm is that engine's); etcd-out-of-space: the NOSPACE
# alarm makes the member unhealthy and refuses writes (reads and member listing still work).
EXPECTED_FAILURES = {
    *(f"LAB1-{i:02d}" for i in (1, 2, *range(4, 13))),
    *(f"LAB2-{i:02d}" for i in range(1, 18)),
    *(f"LAB3-{i:02d}" for i in (1, *range(6, 15))),
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_workshop.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root: they start real Docker engines and etcd")
    out = tmp_path_factory.mktemp("fleet")
    embedded = EmbeddedFleet(FLEET_DIR)
    embedded.down()  # a previous crashed test run
    embedded.up(SPEC, out)
    try:
        yield out
    finally:
        embedded.down()


def test_the_three_inventory_forms_describe_the_same_fleet(fleet: Path) -> None:
    forms = [read_fleet(fleet / name) for name in ("fleet.toml", "inventory.yml", "labs")]
    names = [[lab.name for lab in labs] for labs in forms]
    assert names[0] == names[1] == names[2] == [f"attendee-{i:02d}" for i in range(1, 5)], names
    for labs in zip(*forms, strict=True):
        assert len({(lab.docker, lab.etcd, lab.swarm, lab.control) for lab in labs}) == 1, labs
    # attendee-02's engine is reached as an attendee VM's usually is: tcp:// with TLS and client
    # certificates under DOCKER_CERT_PATH's file names (the run below passes lab1 through it)
    tls = forms[1][1].docker
    assert tls is not None and tls.host.startswith("tcp://127.0.0.1:") and tls.tls_verify and tls.cert_path
    assert all((tls.cert_path / f).is_file() for f in ("ca.pem", "cert.pem", "key.pem"))
    # ...and so is its etcd: https:// with etcdctl's --cacert/--cert/--key (the run passes lab3 through it)
    etcd = forms[1][1].etcd
    assert etcd is not None and all(e.startswith("https://127.0.0.1:") for e in etcd.endpoints)
    assert etcd.cacert and etcd.cert and etcd.key and etcd.key.is_file()
    # attendee-03 is reached over SSH: testinfra (ssh -F, from the URL) and the engine (docker over ssh://)
    over_ssh = forms[1][2]
    assert over_ssh.host.startswith("ssh://root@wt3-node1:") and "ssh_config=" in over_ssh.host
    assert over_ssh.docker is not None and over_ssh.docker.host.startswith("ssh://root@wt3-node1:")


def test_an_unknown_ca_fails_engine_and_etcd_naming_tls(fleet: Path, tmp_path: Path) -> None:
    from pytest_workshop.lab.certs import make_bundle

    other = make_bundle(tmp_path / "other-ca", ["127.0.0.1"], ["localhost"])
    text = (fleet / "labs" / "attendee-02.toml").read_text()
    good = read_fleet(fleet / "labs")[1].docker.cert_path  # type: ignore[union-attr]
    assert text.count(str(good)) == 4  # the engine's cert_path and etcd's cacert, cert, key: all from the other CA
    lab = tmp_path / "labs" / "attendee-02.toml"
    lab.parent.mkdir()
    lab.write_text(text.replace(str(good), str(other)))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "suites/lab1",
            "suites/lab3",
            "--labs",
            str(lab.parent),
            "--check-ids",
            "LAB1-01,LAB3-01",
            "-p",
            "no:cacheprovider",
            "--no-allure",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout[-2000:]
    assert "2 failed" in result.stdout, result.stdout[-2000:]
    assert "TLS with the engine at tcp://127.0.0.1:" in result.stdout and "not signed by the ca.pem" in result.stdout
    assert "DOCKER_CERT_PATH" in result.stdout
    etcd_failure = result.stdout[result.stdout.index("LAB3-01[attendee-02]") :]
    assert "ETCDCTL_CACERT" in etcd_failure and "systemctl start" not in etcd_failure, etcd_failure[:2000]


def test_one_run_over_the_fleet_finds_the_broken_lab(fleet: Path, tmp_path: Path) -> None:
    for scenario in ("docker-engine-stopped", "etcd-out-of-space"):
        broke = cli("break", scenario, "--labs", str(fleet / "inventory.yml"), "--lab", BROKEN)
        assert broke.returncode == 0, broke.stderr
    try:
        summary, allure = tmp_path / "summary.json", tmp_path / "allure-results"
        result = check_fleet(
            fleet, "suites/lab1", "suites/lab2", "suites/lab3", f"--alluredir={allure}", f"--workshop-summary={summary}"
        )
        # the same fleet in two shards (two CI jobs), lab1 and lab3, while attendee-04 is still broken
        shards = [tmp_path / f"shard{k}" for k in (1, 2)]
        for k, shard in enumerate(shards, 1):
            check_fleet(
                fleet,
                "suites/lab1",
                "suites/lab3",
                "--labs-shard",
                f"{k}/2",
                f"--alluredir={shard / 'allure-results'}",
                f"--workshop-summary={shard / 'summary.json'}",
            )
    finally:
        fixed = cli("fix", "--all", "--labs", str(fleet / "fleet.toml"), "--lab", BROKEN)
    assert fixed.returncode == 0, fixed.stderr
    out = result.stdout
    assert result.returncode == 1, out[-3000:]
    labs = json.loads(summary.read_text())["labs"]
    assert sorted(labs) == [f"attendee-{i:02d}" for i in range(1, 5)]
    for name, checks in labs.items():
        failed = {check_id for check_id, c in checks.items() if c["outcome"] in ("FAIL", "ERROR")}
        if name == BROKEN:
            assert failed == EXPECTED_FAILURES, (sorted(failed - EXPECTED_FAILURES), sorted(EXPECTED_FAILURES - failed))
            assert all(checks[c]["outcome"] == "FAIL" and checks[c]["hint"] for c in failed), "a failure without a hint"
            assert "docker" in checks["LAB1-01"]["message"] and "alarm" in checks["LAB3-01"]["message"]
        else:
            assert not failed, f"{name} is healthy, yet failed {sorted(failed)}: {out[-3000:]}"
            assert checks["LAB2-01"]["outcome"] == "PASS"
    # the fleet table: the broken lab first, with its failing IDs; the count of healthy labs
    table = out[out.index("= fleet =") :]
    rows = [line for line in table.splitlines()[2:6]]
    assert rows[0].startswith(BROKEN) and "LAB1-01" in rows[0], table
    assert "3 of 4 labs pass every check" in table
    # the broken lab's failures by cause, a line each: its stopped engine's, its full etcd's
    said = [line for line in out.splitlines() if line.startswith(f"{BROKEN}: ")]
    assert any("LAB1-01" in line and "docker" in line for line in said), said
    assert any("LAB3-06" in line or "alarm" in line for line in said), said
    assert 2 <= len(said) <= 6, said
    fleet_page_shows_it(tmp_path / "fleet.html", tmp_path)
    allure_groups_by_lab(allure, labs)
    shards_merged_say_the_same(fleet, shards, labs, tmp_path / "merged")


def check_fleet(fleet: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *args,
            "--labs",
            str(fleet / "fleet.toml"),
            "-n",
            "4",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HOME": str(fleet / "ssh-home")},  # ssh clients read ~/.ssh: the fleet's
    )


def allure_groups_by_lab(results: Path, labs: dict[str, dict]) -> None:
    """Every Allure result sits under its lab (parentSuite), one per check the summary has."""
    per_lab: dict[str, set[str]] = {}
    for path in results.glob("*-result.json"):
        data = json.loads(path.read_text())
        labels = {x["name"]: x["value"] for x in data["labels"]}
        per_lab.setdefault(labels["parentSuite"], set()).add(labels["tag"])
    assert per_lab == {name: set(checks) for name, checks in labs.items()}


def shards_merged_say_the_same(fleet: Path, shards: list[Path], whole: dict[str, dict], out: Path) -> None:
    """`workshop report --merge` of the two shards: every lab once, each check's outcome as the one
    run found it; the Allure report built from the merged results groups by lab."""
    merged = cli("report", "--merge", *map(str, shards), "--into", str(out), "--labs", str(fleet / "fleet.toml"))
    assert merged.returncode == 0, merged.stderr
    labs = json.loads((out / "summary.json").read_text())["labs"]
    assert sorted(labs) == sorted(whole)
    for name, checks in labs.items():
        same_suites = {c: whole[name][c]["outcome"] for c in checks}
        assert {c: checks[c]["outcome"] for c in checks} == same_suites, name
        assert {c for c in whole[name] if not c.startswith("LAB2-")} == set(checks), name
    assert "3 of 4 labs pass every check" in (out / "fleet.html").read_text()
    built = cli(
        "report",
        "--results",
        str(out / "allure-results"),
        "--out",
        str(out / "report"),
        "--labs",
        str(fleet / "fleet.toml"),
    )
    assert built.returncode == 0, built.stderr
    suites = json.loads((out / "report" / "data" / "suites.json").read_text())
    assert sorted(child["name"] for child in suites["children"]) == sorted(whole)


def chromium(url: str, profile: Path, *extra: str) -> str:
    """What headless Chromium renders (the DOM after the page's script ran)."""
    r = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    return r.stdout


def shown_labs(dom: str) -> list[str]:
    rows = re.findall(r"<tr ([^>]*data-lab=[^>]*)>", dom)
    return [re.search(r'data-lab="([^"]+)"', r).group(1) for r in rows if "hidden" not in r]  # type: ignore[union-attr]


def fleet_page_shows_it(page: Path, tmp: Path) -> None:
    """fleet.html in a real browser: the grid, worst lab first; the filters, set from the address."""
    profile, shot = tmp / "chromium", tmp / "fleet.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=1400,500",
            f"file://{page}",
        ],
        capture_output=True,
        timeout=90,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000, "no screenshot of fleet.html"
    everything = chromium(f"file://{page}", profile, "--dump-dom")
    assert shown_labs(everything)[0] == BROKEN and len(shown_labs(everything)) == 4, shown_labs(everything)
    assert "4 of 4 labs shown" in everything and 'class="FAIL"' in everything
    only_failures = chromium(f"file://{page}#failures", profile, "--dump-dom")
    assert shown_labs(only_failures) == [BROKEN] and "1 of 4 labs shown" in only_failures
    lab3_only = chromium(f"file://{page}#suite=lab3&lab=attendee-0", profile, "--dump-dom")
    header = lab3_only[lab3_only.index("<thead>") : lab3_only.index("</thead>")]
    visible = re.findall(r'<th data-suite="(lab\d)"(?![^>]*hidden)', header)
    assert visible and set(visible) == {"lab3"}, visible


def test_a_bad_inventory_is_refused_before_anything_runs(fleet: Path, tmp_path: Path) -> None:
    bad = tmp_path / "inventory.yml"
    bad.write_text(
        (fleet / "inventory.yml").read_text().replace("workshop_etcd_endpoints:", "workshop_etcd_endpoint:", 1)
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/lab3", "--labs", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 4
    assert "inventory.yml: lab attendee-01: workshop_etcd_endpoint: unknown key" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_status_says_when_the_forwarder_is_what_cuts_etcd_off(fleet: Path) -> None:
    """A paused forwarder (127.0.0.1's only way into the lab) is named as such, not as an unhealthy etcd."""
    from pytest_workshop.lab import process

    lab = EmbeddedFleet(FLEET_DIR).lab("attendee-02")
    forwarder = lab.record("forwarder", "")
    assert forwarder is not None and process.is_ours(forwarder)
    os.kill(forwarder.pid, signal.SIGSTOP)
    try:
        status = cli("lab", "status", "--dir", str(lab.state_dir))
    finally:
        os.kill(forwarder.pid, signal.SIGCONT)
    assert "unreachable (forwarder paused)" in status.stdout, status.stdout
    assert f"forwarder paused: 127.0.0.1 cannot reach the lab (resume it: kill -CONT {forwarder.pid})" in status.stdout
    resumed = cli("lab", "status", "--dir", str(lab.state_dir)).stdout
    assert "forwarder" not in resumed and "unreachable" not in resumed and "unhealthy" not in resumed, resumed


def test_a_real_labs_machines_take_the_guides_commands_over_ssh(fleet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What solve does on a lab that is not the embedded one: the guide's block over ssh (the
    engine's ssh:// URL, ~/.ssh's keys and aliases), and a step's check against that one lab of
    the fleet (pytest --labs FLEET --lab NAME)."""
    from pytest_workshop.guide import step
    from pytest_workshop.guide.machines import SSHMachines
    from pytest_workshop.guide.walk import ENV_FILE

    monkeypatch.setenv("HOME", str(fleet / "ssh-home"))
    over_ssh = next(lab for lab in read_fleet(fleet / "fleet.toml") if lab.name == "attendee-03")
    machines = SSHMachines(over_ssh, ["--labs", str(fleet / "fleet.toml"), "--lab", "attendee-03"])
    assert machines.machines == {"node1"}
    status, out = machines.run_on("node1", f'set -a; . {ENV_FILE}; set +a; echo "$NODE_NAME $(hostname)"')
    assert status == 0, out
    name, hostname = out.split()
    assert name == hostname == "node1", out  # the lab machine sshd runs in (wt3-node1 is its alias in ~/.ssh/config)
    assert machines.check_passes(step("1.1", REPO / "suites"))
    refused = machines.run_on("node1", "exit 3")
    assert refused[0] == 3


def test_readiness_runs_over_the_fleet(fleet: Path, tmp_path: Path) -> None:
    """lab0 over every lab at once: engines over a socket, TLS and SSH, labs of one and three
    machines; a one-machine lab has no ports between machines to probe, and says why. The TLS lab
    has no [app] (the attendee's stack, by default) and was never given lab5's image: not ready,
    until lab0's own probes have built it there."""
    summary = tmp_path / "summary.json"
    first = check_fleet(fleet, "suites/lab0", f"--workshop-summary={summary}")
    labs = json.loads(summary.read_text())["labs"]
    assert sorted(labs) == [f"attendee-{i:02d}" for i in range(1, 5)]
    failed = {
        (lab, c)
        for lab, checks in labs.items()
        for c, v in checks.items()
        if v["outcome"] != "PASS" and v["outcome"] != "SKIP"
    }
    assert failed == {("attendee-02", "LAB0-09")}, first.stdout[-3000:]
    assert "registry-demo" in labs["attendee-02"]["LAB0-09"]["message"]
    assert labs["attendee-01"]["LAB0-08"]["outcome"] == "PASS"  # three machines
    assert labs["attendee-03"]["LAB0-08"]["outcome"] == "SKIP"
    again = check_fleet(fleet, "suites/lab0")
    assert again.returncode == 0, again.stdout[-3000:]
