"""Pure helpers: the hand-written protobuf for etcd's lock API, kernel feature detection, run ids."""

from __future__ import annotations

import gzip

import pytest

from pytest_workshop.components import kernel
from pytest_workshop.components.etcd.wire import decode_fields as _decode_fields
from pytest_workshop.components.etcd.wire import field_bytes as _field_bytes
from pytest_workshop.components.etcd.wire import field_int as _field_int
from pytest_workshop.components.etcd.wire import varint as _varint
from pytest_workshop.config.model import strip_userinfo
from pytest_workshop.run import Run, new_run_id


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**31, 2**63 - 1])
def test_varint_round_trip(n: int) -> None:
    assert _decode_fields(_field_int(2, n)) == {2: n}


def test_lock_request_encoding() -> None:
    msg = _field_bytes(1, b"/lock/a") + _field_int(2, 7229300084465022732)
    assert _decode_fields(msg) == {1: b"/lock/a", 2: 7229300084465022732}
    assert _varint(300) == b"\xac\x02"


def test_kernel_detection_from_config_and_sysfs() -> None:
    files = {
        "/proc/sys/kernel/osrelease": b"6.1.0-test\n",
        "/proc/config.gz": gzip.compress(b"CONFIG_BRIDGE=y\nCONFIG_VXLAN=m\nCONFIG_VETH=y\nCONFIG_OVERLAY_FS=y\n"),
        "/lib/modules/6.1.0-test/modules.dep": b"kernel/drivers/net/vxlan/vxlan.ko: \n",
    }
    features = kernel.detect(files.get, lambda p: p == "/sys/module/bridge")
    assert features.present == {"bridge": True, "veth": True, "vxlan": True, "overlay": True, "ip_vs": False}
    assert features.missing == ["ip_vs"] and features.how["bridge"] == "loaded"


def test_run_identity() -> None:
    run = Run(new_run_id())
    assert run.etcd_prefix.startswith("/pytest-workshop/") and run.etcd_prefix.endswith("/")
    assert run.labels == {"pytest-workshop.run": run.run_id}
    assert new_run_id() != new_run_id()


def test_strip_userinfo() -> None:
    assert strip_userinfo("http://user:pw@host:2379") == "http://host:2379"
    assert strip_userinfo("unix:///var/run/docker.sock") == "unix:///var/run/docker.sock"


def test_a_node_whose_engine_did_not_answer_is_not_called_unconfigured() -> None:
    from pytest_workshop.components.swarm import TaskInfo
    from pytest_workshop.components.swarm_services import Service, ServiceFactory
    from pytest_workshop.errors import ComponentUnavailable, WorkshopError

    task = TaskInfo("t", "node2", "running", "running", "", "c", 1, ())
    silent = ServiceFactory(None, {}, {}, "x-", 1, unreachable={"unix:///n2.sock": "Read timed out"})
    with pytest.raises(ComponentUnavailable, match=r"Docker on node2: did not answer .*Read timed out"):
        Service(silent, None, "svc").container_on(task)
    with pytest.raises(WorkshopError, match="no Docker host configured for node node2"):
        Service(ServiceFactory(None, {}, {}, "x-", 1), None, "svc").container_on(task)


def test_lab_settings_refuse_an_etcd_quota_too_small_for_the_lab() -> None:
    from pytest_workshop.errors import LabError
    from pytest_workshop.lab import LabSettings

    LabSettings().validate()  # the 64 MiB default
    with pytest.raises(LabError, match="--etcd-quota-mib 8"):
        LabSettings(etcd_quota_bytes=8 << 20).validate()


def test_engine_errors_name_the_cause_their_words_show() -> None:
    """components/failures.py: what an engine's HTTP error means (pure text, no engine involved)."""
    from pytest_workshop.components.failures import docker_api_failure
    from pytest_workshop.errors import CheckFailed

    containerd = docker_api_failure(
        500,
        'connection error: desc = "transport: dial unix /run/containerd.sock: connect: connection refused"',
        "docker",
        "unix:///var/run/docker.sock",
    )
    assert isinstance(containerd, CheckFailed) and "cannot reach its containerd" in containerd.message
    assert "containerd" in containerd.hint
    not_in_swarm = docker_api_failure(
        503,
        'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node',
        "swarm",
        "tcp://m:2376",
    )
    assert "not in a swarm" in not_in_swarm.message
    assert "docker swarm init" in not_in_swarm.hint and "docker swarm join" in not_in_swarm.hint
    worker = docker_api_failure(
        503,
        "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state.",
        "swarm",
        "tcp://w:2376",
    )
    assert "worker" in worker.message and "promote" in worker.hint
    other = docker_api_failure(500, "something odd", "docker", "unix:///x.sock")
    assert "answered 500" in other.message and "journalctl -u docker" in other.hint


def test_a_bug_in_the_suite_is_not_a_lab_failure() -> None:
    from pytest_workshop.components.failures import lab_failure

    assert lab_failure(KeyError("x"), "docker") is None
    assert lab_failure(ConnectionRefusedError("refused"), "etcd") is not None


def test_a_docker_response_that_stalls_while_it_streams_is_the_engines_failure() -> None:
    """requests raises these with no request attached (``container.wait`` with kuryr paused):
    the connection pool says whose they are."""
    import requests
    import urllib3
    from docker.transport.unixconn import UnixHTTPConnectionPool

    from pytest_workshop.components.failures import lab_failure
    from pytest_workshop.config import LabConfig
    from pytest_workshop.config.model import DockerConfig
    from pytest_workshop.errors import ComponentUnavailable

    def stalled(pool: object) -> requests.exceptions.ConnectionError:
        return requests.exceptions.ConnectionError(urllib3.exceptions.ReadTimeoutError(pool, None, "Read timed out."))

    unix = lab_failure(stalled(UnixHTTPConnectionPool("http+docker://localhost", "/x.sock", 5)), "kuryr")
    assert isinstance(unix, ComponentUnavailable) and unix.component == "kuryr"
    assert "did not answer within" in unix.message
    tcp_lab = LabConfig(name="t", source="unit test", docker=DockerConfig(host="tcp://10.0.0.5:2376"))
    engine = urllib3.HTTPConnectionPool("10.0.0.5", 2376)
    assert isinstance(lab_failure(stalled(engine), "docker", tcp_lab), ComponentUnavailable)
    # another service's stalled stream is not the engine's (nor, unrecognised, the lab's)
    assert lab_failure(stalled(urllib3.HTTPConnectionPool("10.0.0.9", 80)), "docker", tcp_lab) is None


# --- issue 13: bounds by kind of operation, experiments in the background ----------------------


def test_timeouts_have_a_bound_per_kind_of_operation(tmp_path) -> None:
    from pytest_workshop.config import Timeouts, load_file

    path = tmp_path / "lab.toml"
    path.write_text("[timeouts]\ncontainer_start = 45\nnetwork_create = 20.5\n")
    lab = load_file(path)
    assert lab.timeouts.container_start == 45.0 and lab.timeouts.network_create == 20.5
    assert lab.timeouts.request == Timeouts().request  # the others keep their defaults


def test_an_unknown_bound_is_refused_naming_the_key(tmp_path) -> None:
    from pytest_workshop.config import load_file
    from pytest_workshop.errors import ConfigError

    path = tmp_path / "lab.toml"
    path.write_text("[timeouts]\ncontainer_stat = 45\n")
    with pytest.raises(ConfigError, match=r"timeouts\.container_stat: unknown key"):
        load_file(path)


def test_a_docker_timeout_names_its_bound() -> None:
    from pytest_workshop.components.explain import Talk, explain

    err = explain(
        TimeoutError("Read timed out. (read timeout=5)"), Talk.engine("unix:///run/docker.sock", 5, "request")
    )
    assert "did not answer within 5 s ([timeouts] request)" in err.message
    assert "raise [timeouts] request" in err.hint


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            "SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed'))",
            "not signed by the ca.pem",
        ),
        ("400 Client Error: Client sent an HTTP request to an HTTPS server.", "spoke plain HTTP"),
        (
            "SSLError(SSLError(1, '[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required'))",
            "wants a client certificate",
        ),
    ],
)
def test_a_docker_tls_failure_says_which_and_points_at_the_certificates(error: str, words: str) -> None:
    from pytest_workshop.components.explain import Talk, explain

    err = explain(Exception(error), Talk.engine("tcp://10.0.0.7:2376", 5))
    assert "TLS with the engine at tcp://10.0.0.7:2376 failed" in err.message and words in err.message
    assert "cert_path" in err.hint and "DOCKER_CERT_PATH" in err.hint


def test_a_docker_ssh_failure_says_which_and_points_at_ssh() -> None:
    from pytest_workshop.components.explain import Talk, explain

    err = explain(Exception("gaierror: [Errno -2] Name or service not known"), Talk.engine("ssh://root@attendee-07", 5))
    assert "ssh to the engine's machine at ssh://root@attendee-07 failed" in err.message
    assert "no Host alias in ~/.ssh/config" in err.message and "`ssh HOST docker version`" in err.hint


def test_one_explain_reads_the_swarm_and_openstack_too() -> None:
    from keystoneauth1 import exceptions as ka

    from pytest_workshop.components.explain import READERS, Talk, explain
    from pytest_workshop.config.model import ENV_CLOUD, OpenStackConfig
    from pytest_workshop.errors import ComponentUnavailable

    assert set(READERS) == {"docker", "swarm", "openstack"}
    err = explain(
        RuntimeError("rpc error: code = Unknown desc = The swarm does not have a leader"), Talk.swarm("listing nodes")
    )
    assert isinstance(err, ComponentUnavailable) and err.component == "swarm"
    assert err.message.startswith("swarm: listing nodes: the swarm does not have a leader") and "quorum" in err.hint
    cfg = OpenStackConfig(cloud=ENV_CLOUD, clouds_yaml=None)
    err = explain(ka.Unauthorized("The request you have made requires authentication."), Talk.cloud(cfg, ENV_CLOUD, 5))
    assert "rejected the credentials of the OS_* variables" in err.message and "OS_PASSWORD" in err.hint


def test_a_background_task_hands_its_result_or_its_failure_to_the_check() -> None:
    from pytest_workshop import WorkshopError
    from pytest_workshop.plugin.concurrency import Task

    assert Task("sum", lambda: 1 + 1, 5).result() == 2

    def broken() -> None:
        raise WorkshopError("the lab said no", hint="fix it")

    failing = Task("broken", broken, 5)
    failing.wait()  # finished, and wait() itself does not raise
    with pytest.raises(WorkshopError, match="the lab said no"):
        failing.result()


def test_a_task_starts_after_the_tasks_it_follows() -> None:
    import threading
    import time

    from pytest_workshop.plugin.concurrency import Task

    order: list[str] = []
    release = threading.Event()

    def first() -> None:
        release.wait(5)
        order.append("first")

    earlier = Task("first", first, 5)
    later = Task("second", lambda: order.append("second"), 5, after=[earlier])
    time.sleep(0.1)
    assert order == []  # the second waits although it could run
    release.set()
    later.result()
    assert order == ["first", "second"]


def test_a_task_that_overruns_its_bound_says_so() -> None:
    import threading

    from pytest_workshop import WorkshopError
    from pytest_workshop.plugin.concurrency import Task

    release = threading.Event()
    slow = Task("slow", release.wait, 0.2)
    with pytest.raises(WorkshopError, match=r"the slow experiment did not finish within 0.2 s"):
        slow.result()
    release.set()


def test_a_run_that_may_still_get_objects_stays_known_to_the_sweeps(tmp_path, monkeypatch) -> None:
    """An ended run is forgotten at once, unless its lab may still create one of its objects (a
    create that timed out): then automatic sweeps take it for LATE_OBJECTS_S after it ends."""
    import os

    from pytest_workshop import run as runs

    monkeypatch.setattr(runs, "REGISTRY", tmp_path)
    plain, late = runs.Run(runs.new_run_id()), runs.Run(runs.new_run_id())
    for r in (plain, late):
        r.register(os.getpid())
    runs.expect_late_objects(late.run_id)
    for r in (plain, late):
        r.unregister()
    assert not runs.run_is_registered(plain.run_id)
    assert runs.run_is_registered(late.run_id) and not runs.run_is_alive(late.run_id)
    assert runs.forget_dead_runs() == [] and runs.run_is_registered(late.run_id)
    monkeypatch.setattr(runs.time, "time", lambda: 1e12)  # long after LATE_OBJECTS_S
    assert runs.forget_dead_runs() == [late.run_id]


def test_a_killed_run_is_forgotten_only_once_every_component_it_touched_is_swept(tmp_path, monkeypatch) -> None:
    """The next run sweeps component by component (its docker client, then its etcd client...): a
    sweep of one must not make the dead run unknown to the next one's, or its objects there stay."""
    import subprocess

    from pytest_workshop import run as runs

    monkeypatch.setattr(runs, "REGISTRY", tmp_path)
    killed = runs.Run(runs.new_run_id())
    gone = subprocess.Popen(["true"])
    gone.wait()
    killed.register(gone.pid)  # a process that is no more: the run was killed
    killed.touched("docker:unix:///node1.sock")
    killed.touched("etcd:http://127.0.0.1:2379")
    dead = runs.dead_runs()
    assert dead == [killed.run_id]
    runs.mark_swept("docker:unix:///node1.sock", dead)
    assert runs.forget_dead_runs(complete_only=True) == [] and runs.run_is_registered(killed.run_id)
    runs.mark_swept("etcd:http://127.0.0.1:2379", dead)
    assert runs.forget_dead_runs(complete_only=True) == [killed.run_id]
    assert list(tmp_path.iterdir()) == []


def test_a_run_whose_final_sweep_left_something_stays_known_until_the_next_runs_sweep_it(tmp_path, monkeypatch) -> None:
    """A component down at a run's end (containerd killed): what its own final sweep could not
    remove is the next runs' to sweep, so the run stays known as ended until they have."""
    import os

    from pytest_workshop import run as runs

    monkeypatch.setattr(runs, "REGISTRY", tmp_path)
    ended = runs.Run(runs.new_run_id())
    ended.register(os.getpid())
    ended.touched("docker:unix:///node1.sock")
    runs.expect_leftovers(ended.run_id)
    ended.unregister()
    assert runs.dead_runs() == [ended.run_id]
    assert runs.forget_dead_runs(complete_only=True) == []
    runs.mark_swept("docker:unix:///node1.sock", runs.dead_runs())
    assert runs.forget_dead_runs(complete_only=True) == [ended.run_id]


def test_an_error_is_quoted_up_to_its_reason_and_neutrons_refusals_are_read() -> None:
    from pytest_workshop.components.explain import neutron_refusal, quote

    said = (
        "NetworkDriver.CreateEndpoint: "
        + "x" * 260
        + " Quota exceeded for resources: ['port']. Neutron server returns request_ids: ['req-1']"
    )
    quoted = quote(said)
    assert "Quota exceeded for resources: ['port']." in quoted and "request_ids" not in quoted
    assert quote("short\n  and   plain") == "short and plain"
    meaning, hint = neutron_refusal(said) or ("", "")
    assert "quota" in meaning and "openstack quota show --usage" in hint and "openstack quota set --ports" in hint
    assert neutron_refusal("connection refused") is None


def test_an_etcd_lease_lost_in_a_leader_stall_is_said_in_etcds_terms() -> None:
    from pytest_workshop.components.etcd.errors import refusal

    err = refusal("put", "http://127.0.0.1:2379", "NOT_FOUND: etcdserver: requested lease not found")
    assert "the lease was gone before the request" in err.message and "stalled leader" in err.message
    assert "etcdctl endpoint status -w table" in err.hint and "read the members' logs" not in err.hint
