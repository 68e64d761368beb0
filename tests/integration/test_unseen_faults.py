"""Faults no catalogue scenario covers, injected by hand into the test lab (a service stopped or
paused through the lab's control, a password changed, a quota, a firewall rule in a node's
namespace), as an attendee or an instructor meets them. Each run's message and hint must name
the cause the evidence shows; nothing the run made may stay behind."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_workshop.components.waiting import wait_until
from pytest_workshop.config import load_file
from tests.integration.leftovers import left_by
from tests.integration.test_honest_verdicts import BUG_IN_SUITE, checklist_of, run

# Each of these runs a suite against a faulty lab (20 to 50 s): the nightly workflow runs them
# (`scripts/selftest -m nightly`); the etcd and quota ones take seconds and stay in .ci/run.
nightly = pytest.mark.nightly


def nothing_left(healthy_lab, within: float = 0.0) -> None:
    """Nothing of any run is left on the lab (``within`` s: a node that was cut off learns of the
    removals the run made once it is reachable again)."""
    cfg = load_file(healthy_lab.config)
    left = wait_until(lambda: not left_by(cfg), within, step=2.0) if within else not left_by(cfg)
    assert left, left_by(cfg)


# --- 1. a component the hint did not know: every service on the path is a candidate -------


@nightly
@pytest.mark.parametrize(
    ("member", "title", "unit"),
    [
        ("ovn-sb", "OVN's southbound database", "ovn-ovsdb-server-sb"),
        ("ovsdb-server", "Open vSwitch's database", "ovsdb-server"),
    ],
)
def test_a_stopped_service_on_the_binding_path_is_named_among_all_of_it(
    healthy_lab, tmp_path: Path, member: str, title: str, unit: str
) -> None:
    healthy_lab.lab.member("openstack", member).stop()
    result, v = run(healthy_lab, tmp_path, "suites/lab4", "-k", "port_active")
    assert v == {"LAB4-09": "FAIL"}, result.stdout[-3000:]
    lines = checklist_of(result, "LAB4-09")
    assert f"{member} stopped" in lines and "ovn-controller running" in lines and "ovn-northd running" in lines, lines
    assert f"hint: start {title} (DevStack: `sudo systemctl start {unit}`" in lines, lines
    assert BUG_IN_SUITE not in result.stdout
    nothing_left(healthy_lab)


# --- 2. a service that runs but fails: its log and its error decide, never "start" --------


def openstack_admin(healthy_lab, *args: str) -> str:
    """The `openstack` CLI of the lab's OpenStack virtualenv, as the admin cloud."""
    from pytest_workshop.lab.openstack import VENV

    cfg = load_file(healthy_lab.config)
    env = {"OS_CLIENT_CONFIG_FILE": str(cfg.openstack.clouds_yaml), "OS_CLOUD": cfg.openstack.admin_cloud or ""}
    out = subprocess.run(
        [str(VENV / "bin" / "openstack"), *args], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


@contextlib.contextmanager
def kuryr_configured(healthy_lab, key: str, value: str) -> Iterator[str]:
    """kuryr restarted with ``[neutron] key = value`` in its own kuryr.conf (what it had: yielded);
    restarted with its own configuration again afterwards."""
    conf = Path(healthy_lab.lab.openstack_specs()[1].path("etc", "kuryr.conf"))
    kept = conf.read_text()
    before = next(line.split("=", 1)[1].strip() for line in kept.splitlines() if line.startswith(f"{key} ="))
    kuryr = healthy_lab.lab.member("openstack", "kuryr")
    conf.write_text(kept.replace(f"{key} = {before}\n", f"{key} = {value}\n"))
    kuryr.stop()
    kuryr.start()
    try:
        yield before
    finally:
        conf.write_text(kept)
        kuryr.stop()
        kuryr.start()


@nightly
@pytest.mark.parametrize(
    ("key", "value", "cause", "fix"),
    [
        (
            "password",
            "not-kuryrs-password",
            "Keystone refuses kuryr-libnetwork's own credentials (HTTP 401)",
            "hint: fix the credentials in kuryr.conf's [neutron] section",
        ),
        (
            "region_name",
            "RegionTwo",
            "kuryr-libnetwork finds no endpoint it needs in Keystone's catalogue",
            "hint: set region_name and endpoint_type in kuryr.conf's [neutron] section",
        ),
    ],
    ids=["wrong password", "wrong region"],
)
def test_kuryr_that_runs_but_fails_is_read_in_its_log_not_told_to_start(
    healthy_lab, tmp_path: Path, key: str, value: str, cause: str, fix: str
) -> None:
    with kuryr_configured(healthy_lab, key, value) as kept:
        time.sleep(2)  # its first tries at start-up, in its log
        result, v = run(healthy_lab, tmp_path, "suites/lab4", "-k", "plugin_answers or docker_uses or one_neutron")
        assert healthy_lab.lab.member("openstack", "kuryr").is_running(), "kuryr retries at start-up: it runs"
    assert set(v.values()) == {"FAIL"}, result.stdout[-3000:]
    for check in v:
        lines = checklist_of(result, check)
        assert "hint: start" not in lines and "systemctl restart" not in lines, lines
    first = checklist_of(result, "LAB4-05")
    assert "(kuryr running, says the lab's control)" in first and cause in first, first
    assert fix in first, first
    if key == "password":  # neither kuryr's password nor the wrong one is ever printed
        assert kept not in result.stdout and value not in result.stdout
    nothing_left(healthy_lab)


# --- 4. a network fault the app meets: the network first, not the app's code -------------


@contextlib.contextmanager
def ports_dropped(healthy_lab, node: str, rules: list[tuple[str, int]]) -> Iterator[None]:
    """DROP those ports in and out of one node's own network namespace."""
    netns = healthy_lab.lab.node_spec(node).netns
    argvs = [["-p", proto, flag, str(port), "-j", "DROP"] for proto, port in rules for flag in ("--dport", "--sport")]
    chains = [(chain, argv) for argv in argvs for chain in ("INPUT", "OUTPUT")]
    for chain, argv in chains:
        subprocess.run(["ip", "netns", "exec", netns, "iptables", "-I", chain, *argv], check=True, timeout=10)
    try:
        yield
    finally:
        for chain, argv in chains:
            subprocess.run(["ip", "netns", "exec", netns, "iptables", "-D", chain, *argv], timeout=10)


APP_CHECKS = ("LAB5-04", "LAB5-07", "LAB5-09")


@nightly
@pytest.mark.parametrize(
    "rules",
    [[("tcp", 7946), ("udp", 7946)], [("udp", 4789)]],
    ids=["gossip 7946", "vxlan 4789"],
)
def test_a_node_cut_off_the_overlay_is_said_before_the_apps_code(healthy_lab, tmp_path: Path, rules) -> None:
    with ports_dropped(healthy_lab, "node3", rules):
        time.sleep(3)  # gossip's failure detection
        result, v = run(healthy_lab, tmp_path, "suites/lab5", "-k", "not kuryr", timeout=300)
    failed = [c for c, verdict in v.items() if verdict == "FAIL"]
    assert failed, result.stdout[-3000:]
    for check in failed:
        lines = checklist_of(result, check)
        if "same cause as" in lines:
            continue
        assert "overlay network" in lines and "7946" in lines.split("hint:")[1].split(";")[0], lines
    assert BUG_IN_SUITE not in result.stdout
    nothing_left(healthy_lab, within=60)


# --- 5. a refusal quoted up to its reason, with the command that shows and fixes it -------


def test_a_port_quota_used_up_is_quoted_to_its_reason(healthy_lab, tmp_path: Path) -> None:
    import json

    project = "service"  # kuryr's ([neutron] project_name in its kuryr.conf)
    quotas = json.loads(openstack_admin(healthy_lab, "quota", "show", "-f", "json", project))
    ports = next(q["Limit"] for q in quotas if q["Resource"] == "ports")
    openstack_admin(healthy_lab, "quota", "set", "--ports", "0", project)
    try:
        result, v = run(healthy_lab, tmp_path, "suites/lab4", "-k", "port_active")
    finally:
        openstack_admin(healthy_lab, "quota", "set", "--ports", str(ports), project)
    assert v == {"LAB4-09": "FAIL"}, result.stdout[-3000:]
    lines = checklist_of(result, "LAB4-09")
    assert "a quota of the project is used up" in lines and "Quota exceeded for resources: ['port']" in lines, lines
    assert "hint: see the project's quotas and usage: `openstack quota show --usage PROJECT`" in lines, lines
    nothing_left(healthy_lab)


# --- 3. a transient stall: said in etcd's terms, with where to see it ---------------------


def etcd_leader(healthy_lab) -> str:
    """The name of the member that leads the test lab's cluster now."""
    import json

    cfg = load_file(healthy_lab.config)
    base = ["etcdctl", "--endpoints", ",".join(cfg.etcd.endpoints), "--dial-timeout", "3s", "-w", "json"]
    status = json.loads(subprocess.run([*base, "endpoint", "status"], capture_output=True, timeout=20).stdout)
    leader = status[0]["Status"]["leader"]
    members = json.loads(subprocess.run([*base, "member", "list"], capture_output=True, timeout=20).stdout)
    return next(m["name"] for m in members["members"] if m["ID"] == leader)


def test_a_lease_lost_while_the_leader_stalled_is_said_in_etcds_terms(healthy_lab) -> None:
    from pytest_workshop.components import etcd as etcd_component
    from pytest_workshop.components.failures import lab_failure
    from pytest_workshop.errors import WorkshopError

    cfg = load_file(healthy_lab.config)
    client = etcd_component.connect(cfg.etcd, cfg.timeouts)
    try:
        lease, _ = client.grant(1)
        leader = healthy_lab.lab.member("etcd", etcd_leader(healthy_lab))
        leader.pause()
        time.sleep(6)  # an election, then the lease's TTL on the new leader, run out
        leader.resume()
        with pytest.raises(WorkshopError) as raised:
            client.put(b"/pytest-workshop-selftest/stalled", b"x", lease=lease)
    finally:
        client.close()
    failure = lab_failure(raised.value, "etcd", cfg)
    assert failure is not None
    assert "the lease was gone before the request" in failure.message, failure.message
    assert "requested lease not found" in failure.message, failure.message
    assert failure.hint.startswith("`etcdctl endpoint status -w table` shows whether the leader changed"), failure.hint


def test_a_follower_waiting_on_a_stalled_leader_is_not_called_hung(healthy_lab) -> None:
    """A request through a follower while the leader is paused times out there: the follower is
    not the one to look at; the election it waits for is."""
    import json
    from dataclasses import replace

    from pytest_workshop.components import etcd as etcd_component
    from pytest_workshop.errors import WorkshopError

    cfg = load_file(healthy_lab.config)
    base = ["etcdctl", "--endpoints", ",".join(cfg.etcd.endpoints), "--dial-timeout", "3s", "-w", "json"]
    status = json.loads(subprocess.run([*base, "endpoint", "status"], capture_output=True, timeout=20).stdout)
    follower = next(s["Endpoint"] for s in status if s["Status"]["header"]["member_id"] != s["Status"]["leader"])
    client = etcd_component.connect(replace(cfg.etcd, endpoints=(follower,)), cfg.timeouts)
    leader = healthy_lab.lab.member("etcd", etcd_leader(healthy_lab))
    leader.pause()
    try:
        with pytest.raises(WorkshopError) as raised:
            client.put(b"/pytest-workshop-selftest/stalled", b"x")
    finally:
        leader.resume()
        client.close()
    message, hint = raised.value.message, raised.value.hint
    assert f"{follower} answer their status" in message, message
    assert "an election" in message or "wait on their leader" in message, message
    assert hint.startswith("`etcdctl endpoint status -w table` shows whether the leader changed"), hint
