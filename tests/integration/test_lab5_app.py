"""lab5 on the real test lab: the reference app deployed by the suite (reference mode), and an
attendee's deployment made with `docker stack deploy` (attendee mode): healthy, not deployed, a
backend that cannot register, a stale registration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_workshop.components import etcd as etcd_component
from pytest_workshop.components.microservices import stack_file
from pytest_workshop.config import load_file
from pytest_workshop.faults.matrix import hints, verdicts

REPO = Path(__file__).resolve().parents[2]
LAB5_IDS = [f"LAB5-{i:02d}" for i in range(1, 18)]
ON_SWARM = LAB5_IDS[:15]  # LAB5-16 and 17 deploy the reference app on kuryr themselves, in either mode
OBSERVATIONS = "LAB5-01,LAB5-02,LAB5-03,LAB5-04,LAB5-05,LAB5-06,LAB5-07,LAB5-08,LAB5-09,LAB5-15"


def attendee_config(lab, tmp_path: Path, stack: str) -> Path:
    """The test lab's lab.toml, in attendee mode: the checks look at the stack named ``stack``."""
    text = lab.config.read_text().replace('mode = "reference"', f'mode = "attendee"\nstack = "{stack}"')
    path = tmp_path / "attendee.toml"
    path.write_text(text)
    return path


def stack(lab, *args: str, endpoints: str | None = None) -> subprocess.CompletedProcess[str]:
    """The docker CLI against the test lab's first node, as an attendee types it."""
    cfg = load_file(lab.config)
    env = {**os.environ, "DOCKER_HOST": lab.lab.node_spec("node1").host}
    env["ETCD_ENDPOINTS"] = endpoints or ",".join(cfg.app.etcd_endpoints)
    return subprocess.run(["docker", "stack", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def deployed(healthy_lab, tmp_path):
    """Deploy the reference app's stack file by hand under a stack name of this test; removed after."""
    names = []

    def deploy(name: str, endpoints: str | None = None) -> Path:
        build = subprocess.run(
            [sys.executable, "-m", "pytest_workshop.cli", "app", "build", "--lab-config", str(healthy_lab.config)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert build.returncode == 0, build.stderr
        names.append(name)
        result = stack(healthy_lab, "deploy", "-c", str(stack_file()), name, endpoints=endpoints)
        assert result.returncode == 0, result.stderr
        return attendee_config(healthy_lab, tmp_path, name)

    yield deploy
    for name in names:
        stack(healthy_lab, "rm", name)


def run_lab5(lab, tmp_path: Path, *args: str, config: Path | None = None):
    junit = tmp_path / "lab5.xml"
    result = lab.pytest("suites/lab5", "--no-allure", f"--junitxml={junit}", *args, config=config, timeout=300)
    return result, verdicts(junit), hints(junit)


def test_reference_mode_green_and_nothing_left(healthy_lab, tmp_path):
    result, v, _ = run_lab5(healthy_lab, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert sorted(v) == LAB5_IDS and set(v.values()) == {"PASS"}, v
    cfg = load_file(healthy_lab.config)
    # the run's stack is gone: no services, no networks, no registrations of it
    env = {**os.environ, "DOCKER_HOST": healthy_lab.lab.node_spec("node1").host}
    services = subprocess.run(
        ["docker", "service", "ls", "-q", "--filter", "label=pytest-workshop.run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.split()
    assert not services, services
    with etcd_component.connect(cfg.etcd, cfg.timeouts) as client:
        left = [kv.key for kv in client.get_prefix(cfg.app.registry_prefix.encode()) if b"pw-" in kv.key]
    assert not left, left


def test_attendee_app_not_deployed_fails_with_the_deploy_command(healthy_lab, tmp_path):
    config = attendee_config(healthy_lab, tmp_path, "never-deployed")
    result, v, h = run_lab5(healthy_lab, tmp_path, config=config)
    assert result.returncode == 1
    assert sorted(v) == LAB5_IDS, v
    assert {c: v[c] for c in ON_SWARM} == dict.fromkeys(ON_SWARM, "FAIL"), v  # failures, not skips or errors
    assert v["LAB5-16"] == v["LAB5-17"] == "PASS", v
    assert all("docker stack deploy -c" in h[c] and "never-deployed" in h[c] for c in ON_SWARM), h


def test_attendee_deployment_green_and_a_stale_registration(healthy_lab, tmp_path, deployed):
    config = deployed("wsdemo")
    result, v, _ = run_lab5(healthy_lab, tmp_path, "--check-ids", OBSERVATIONS, config=config)
    assert result.returncode == 0 and set(v.values()) == {"PASS"}, result.stdout[-3000:]
    cfg = load_file(healthy_lab.config)
    ghost = f"{cfg.app.registry_prefix}wsdemo_backend/deadbeef0000".encode()
    with etcd_component.connect(cfg.etcd, cfg.timeouts) as client:
        client.put(ghost, b'{"address": "10.0.9.9", "port": 8080}')  # no lease: it never expires
        try:
            result, v, h = run_lab5(healthy_lab, tmp_path, "--check-ids", "LAB5-06", config=config)
        finally:
            client.delete(ghost)
    assert v == {"LAB5-06": "FAIL"}, result.stdout[-3000:]
    assert "deadbeef0000 (no lease)" in result.stdout and "etcdctl del" in h["LAB5-06"]


def test_attendee_backend_that_cannot_register(healthy_lab, tmp_path, deployed):
    # an address on the lab segment where no etcd listens: the instances run, nothing registers
    config = deployed("wsnoreg", endpoints="http://10.251.1.99:2379")
    result, v, h = run_lab5(healthy_lab, tmp_path, "--check-ids", "LAB5-01,LAB5-02,LAB5-03", config=config)
    assert v == {"LAB5-01": "PASS", "LAB5-02": "PASS", "LAB5-03": "FAIL"}, result.stdout[-3000:]
    assert "running but not registered" in result.stdout and "ETCD_ENDPOINTS" in h["LAB5-03"]


def test_request_stream_keeps_every_answer_and_failure_and_stops_when_told(healthy_lab):
    """RequestStream, the traffic under LAB5-11's scale-down and LAB5-13's rolling update, against
    a real container: answers as they come, a failure for each request once the server is gone,
    an end it was not told to make is a failure too, and stop() ends the client at once."""
    import time

    import docker

    from pytest_workshop.components.app_wire import APP_PORT, RequestStream
    from pytest_workshop.components.microservices import APP_IMAGE, ensure_app_image

    client = docker.DockerClient(base_url=healthy_lab.lab.node_spec("node1").host, timeout=10)
    ensure_app_image(client)
    serve = f'mkdir -p /srv && cd /srv && echo \'{{"answered_by": "me"}}\' > a.json && (python3 -m http.server {APP_PORT} & echo $! > pid) && exec sleep 60'
    server = client.containers.run(
        APP_IMAGE, ["sh", "-c", serve], detach=True, init=True, labels={"pytest-workshop.test": "request-stream"}
    )
    try:
        listening = RequestStream(server, "/a.json")
        deadline = time.monotonic() + 10
        while not any("answered_by" in a for a in listening.answers) and time.monotonic() < deadline:
            time.sleep(0.05)
        listening.stop()

        stream = RequestStream(server, "/a.json", interval=0.05)
        time.sleep(1)
        before = list(stream.answers)
        assert server.exec_run(["sh", "-c", "kill $(cat /srv/pid)"]).exit_code == 0
        time.sleep(0.5)
        t0 = time.monotonic()
        answers = stream.stop()
        stopped_in = time.monotonic() - t0
        assert len(before) >= 5 and all(a.get("answered_by") == "me" for a in before), before
        failed = [a for a in answers[len(before) :] if "failed" in a]
        assert failed and "refused" in str(failed[-1]).lower(), answers[len(before) :]
        assert stopped_in < 3, stopped_in
        assert "python3 -c" not in server.exec_run(["ps", "-o", "args"]).output.decode()  # the client exited

        gone = RequestStream(server, "/a.json")
        time.sleep(0.3)
        server.kill()  # the container stops under the client: an end nobody asked for
        time.sleep(1)
        assert gone.stop()[-1] == {"failed": "the requests ended before they were stopped"}
    finally:
        server.remove(force=True)
        client.close()
