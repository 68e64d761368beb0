"""What a hint makes of the lab's control and a service's log (pure logic: states and log text given)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from pytest_workshop.components.kuryr_probe import KuryrProbe, kuryr_failure, kuryr_refused
from pytest_workshop.components.service_log import Witness, last_error, meaning
from pytest_workshop.components.service_path import PATHS, read_path

NOW = datetime(2026, 12, 4, 19, 0, 0)


def states(**given: str) -> object:
    return lambda component, name: given.get(name.replace("-", "_"))


def test_a_path_names_the_one_service_that_is_down_among_all_of_it() -> None:
    running = {m.replace("-", "_"): "running" for m in PATHS["port binding"]}
    reading = read_path("port binding", states(**{**running, "ovn_sb": "stopped"}))  # type: ignore[arg-type]
    assert "ovn-sb stopped" in reading.evidence and "ovn-northd running" in reading.evidence
    hint = reading.hint("look between them")
    assert "start OVN's southbound database" in hint and "ovn-ovsdb-server-sb" in hint
    assert "ovn-controller" not in hint.split(";")[0].split("(")[0]


def test_a_path_that_all_runs_sends_the_reader_between_its_services() -> None:
    running = {m.replace("-", "_"): "running" for m in PATHS["datapath"]}
    reading = read_path("datapath", states(**running))  # type: ignore[arg-type]
    assert reading.hint("read ovn-controller's connection-status").startswith("all of ovn-nb, ovn-northd")
    assert "start" not in reading.hint("x")


def test_a_path_the_lab_cannot_tell_of_lists_every_candidate() -> None:
    reading = read_path("port binding", states(ovn_controller="running", ovn_northd="running"))  # type: ignore[arg-type]
    assert "the lab cannot tell of neutron-api, ovn-nb, ovn-sb, ovsdb-server, ovs-vswitchd" in reading.evidence
    assert "ovn-ovsdb-server-sb" in reading.hint("x") and "start" not in reading.hint("x")
    paused = read_path("datapath", states(ovn_northd="paused"))  # type: ignore[arg-type]
    assert paused.hint("x").startswith("resume ovn-northd") and "--signal=CONT ovn-northd" in paused.hint("x")


def write(tmp_path: Path, text: str) -> Path:
    log = tmp_path / "kuryr.log"
    log.write_text(text)
    return log


TRACEBACK_401 = """\
2026-12-04 18:58:10.100 4242 INFO kuryr_libnetwork.controllers [-] Received /IpamDriver.RequestPool
2026-12-04 18:58:10.200 4242 ERROR kuryr_libnetwork.server [-] Exception on /IpamDriver.RequestPool [POST]
Traceback (most recent call last):
  File "/opt/x/flask/app.py", line 1, in wsgi_app
    response = self.full_dispatch_request()
keystoneauth1.exceptions.http.Unauthorized: The request you have made requires authentication. (HTTP 401) (Request-ID: req-1)
2026-12-04 18:58:10.300 4242 INFO werkzeug [-] 127.0.0.1 "POST /IpamDriver.RequestPool HTTP/1.1" 500 -
"""


def test_the_last_error_of_a_log_is_its_tracebacks_exception(tmp_path: Path) -> None:
    error = last_error([write(tmp_path, TRACEBACK_401)], now=NOW)
    assert error is not None and error.line.startswith("keystoneauth1.exceptions.http.Unauthorized: The request")
    assert error.when == datetime(2026, 12, 4, 18, 58, 10)
    read = meaning(error, "kuryr-libnetwork", "in kuryr.conf")
    assert read is not None and "refuses kuryr-libnetwork's own credentials" in read[0] and "kuryr.conf" in read[1]


def test_an_old_error_is_another_faults(tmp_path: Path) -> None:
    assert last_error([write(tmp_path, TRACEBACK_401)], now=NOW + timedelta(minutes=10)) is None
    assert last_error([tmp_path / "missing.log"], now=NOW) is None


def test_a_running_kuryr_is_never_told_to_start(tmp_path: Path) -> None:
    log = write(tmp_path, "2026-12-04 18:59:59.000 1 INFO kuryr [-] started\n")
    witness = Witness("openstack", "kuryr", lambda c, n: "running", (log,))
    failure = kuryr_failure("kuryr-libnetwork at http://127.0.0.1:23750 is not answering", witness)
    assert "(kuryr running, says the lab's control)" in failure.message and not failure.hint.startswith("start")
    stopped = kuryr_failure("not answering", Witness("openstack", "kuryr", lambda c, n: "stopped", ()))
    assert stopped.hint.startswith("start kuryr-libnetwork")
    probe = KuryrProbe("/etc/docker/plugins/kuryr.spec", "http://x", True, ("NetworkDriver", "IpamDriver"), "")
    assert probe.failure() is None


def test_kurys_bare_http_500_is_read_in_its_log(tmp_path: Path) -> None:
    text = "500 Server Error: Internal Server Error (IpamDriver.RequestPool: 500 Internal Server Error)"
    log = write(tmp_path, TRACEBACK_401.replace("2026-12-04 18:58:10", datetime.now().strftime("%Y-%m-%d %H:%M:%S")))
    failure = kuryr_refused("`docker network create -d kuryr`", text, Witness("openstack", "kuryr", None, (log,)))
    assert "Keystone refuses kuryr-libnetwork's own credentials (HTTP 401)" in failure.message
    assert failure.hint.startswith("fix the credentials in kuryr.conf")
    assert "read kuryr-libnetwork's log" in kuryr_refused("x", text, None).hint


def test_a_log_without_stamps_is_dated_by_its_last_write(tmp_path: Path) -> None:
    log = write(tmp_path, "Traceback (most recent call last):\nValueError: old\n")
    assert last_error([log], now=datetime.now()) is not None
    assert last_error([log], now=datetime.now() + timedelta(hours=1)) is None


def test_a_node_that_does_not_see_the_others_on_an_overlay_is_named() -> None:
    from pytest_workshop.components.swarm_network import NodeView, _cut

    a, b, c = "10.0.0.1", "10.0.0.2", "10.0.0.3"
    every = {a, b, c}
    whole = {
        "node1": NodeView(a, {"app": every}),
        "node2": NodeView(b, {"app": every}),
        "node3": NodeView(c, {"app": every}),
    }
    assert _cut(whole) is None
    cut = _cut(
        {
            "node1": NodeView(a, {"app": {a, b}}),
            "node2": NodeView(b, {"app": {a, b}}),
            "node3": NodeView(c, {"app": {c}}),
        }
    )
    assert cut is not None and cut.unseen == {"node1": ["node3"], "node2": ["node3"], "node3": ["node1", "node2"]}
    assert (
        "overlay network app (node1 sees none of node3; node2 sees none of node3; node3 sees none of node1, node2)"
        in cut.message
    )
    # a node without containers on the network lists no peers there: nothing is missing
    assert (
        _cut({"node1": NodeView(a, {"app": {a, b}}), "node2": NodeView(b, {"app": {a, b}}), "node3": NodeView(c, {})})
        is None
    )


def test_a_region_the_catalogue_lacks_is_read_as_such(tmp_path: Path) -> None:
    line = (
        "2026-12-04 18:58:10.100 1 ERROR kuryr_libnetwork.controllers [-] Error happened during retrieving neutron "
        "extensions: public endpoint for network service in RegionTwo region not found: keystoneauth1.exceptions."
        "catalog.EndpointNotFound: public endpoint for network service in RegionTwo region not found\n"
    )
    error = last_error([write(tmp_path, line)], now=NOW)
    assert error is not None and "EndpointNotFound" in error.line
    read = meaning(error, "kuryr-libnetwork", "in kuryr.conf")
    assert read is not None and "no endpoint it needs" in read[0] and "region_name and endpoint_type" in read[1]


def test_members_that_time_out_but_answer_their_status_wait_on_their_leader() -> None:
    from pytest_workshop.components.etcd.errors import stalled_on
    from pytest_workshop.components.etcd.view import EndpointStatus

    follower = EndpointStatus("http://e2", True, member_id=2, leader_id=1, raft_term=3)
    leader_down = EndpointStatus("http://e1", False, error="did not answer")
    said = stalled_on([follower], [leader_down, follower])
    assert (
        said is not None
        and "wait on their leader, member 1, which does not answer (of the configured endpoints, http://e1 do not answer)"
        in said
    )
    said = stalled_on([follower], [EndpointStatus("http://e1", False, member_id=1), follower])
    assert said is not None and "which does not answer at http://e1" in said
    assert "no leader" in (stalled_on([EndpointStatus("http://e2", True, member_id=2)], []) or "")
    new_leader = EndpointStatus("http://e2", True, member_id=2, leader_id=2, raft_term=4)
    assert "leading (raft term 4)" in (stalled_on([new_leader], [new_leader]) or "")
    assert stalled_on([leader_down], [leader_down]) is None  # hung itself: HINT_HUNG stands
