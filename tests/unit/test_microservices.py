"""lab5's pure logic: the stack file as `docker stack deploy` reads it, the registration
contract, [app] in lab.toml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_workshop.components import microservices
from pytest_workshop.config import from_mapping
from pytest_workshop.errors import CheckFailed, ConfigError, WorkshopError


def test_the_shipped_stack_file_reads_as_deployed():
    stack = microservices.read_stack(microservices.stack_file(), {"ETCD_ENDPOINTS": "http://10.0.0.1:2379"})
    backend, frontend = stack.services["backend"], stack.services["frontend"]
    assert backend.image == microservices.APP_IMAGE and backend.replicas == 3
    assert backend.endpoint_mode == "dnsrr"  # VIP needs ip_vs
    assert backend.init and frontend.init  # SIGTERM must reach python: deregistration
    assert (
        backend.env["ETCD_ENDPOINTS"] == "http://10.0.0.1:2379" and backend.env["SERVICE_NAME"] == "{{.Service.Name}}"
    )
    assert backend.update["order"] == "start-first" and backend.stop_grace_s == 5
    assert backend.networks == ["app"] and "app" in stack.networks


def test_stack_variables_and_durations(tmp_path):
    f = tmp_path / "stack.yml"
    f.write_text(
        'services:\n  s:\n    image: ${IMG:-a:1}\n    stop_grace_period: 1500ms\n    environment: {E: "${E}"}\n'
    )
    assert microservices.read_stack(f, {"E": "x"}).services["s"].image == "a:1"
    assert microservices.read_stack(f, {"E": "x", "IMG": "b:2"}).services["s"].stop_grace_s == 1.5
    with pytest.raises(WorkshopError, match=r"\$\{E\} has no value"):
        microservices.read_stack(f, {})


@dataclass
class KV:
    key: bytes
    value: bytes
    lease: int = 0


class FakeEtcd:
    def __init__(self, kvs: list[KV]) -> None:
        self.kvs = kvs

    def get_prefix(self, prefix: bytes) -> list[KV]:
        return [kv for kv in self.kvs if kv.key.startswith(prefix)]


def test_registrations_follow_the_contract():
    etcd = FakeEtcd(
        [KV(b"/services/s_backend/abc", b'{"address": "10.0.1.5", "port": 8080}', 7), KV(b"/services/other/x", b"{}")]
    )
    found = microservices.read_registrations(etcd, "/services/s_backend/")
    assert list(found) == ["abc"] and found["abc"].address == "10.0.1.5" and found["abc"].lease == 7
    broken = FakeEtcd([KV(b"/services/s_backend/abc", b"10.0.1.5:8080")])
    with pytest.raises(CheckFailed, match="does not follow the registration contract"):
        microservices.read_registrations(broken, "/services/s_backend/")


def test_deploy_command_names_the_stack_and_endpoints():
    cmd = microservices.deploy_command("demo", ("http://10.0.0.1:2379",))
    assert cmd.startswith("ETCD_ENDPOINTS=http://10.0.0.1:2379 docker stack deploy -c ") and cmd.endswith(" demo")
    assert "NODE1" in microservices.deploy_command("demo")  # no endpoints known: a placeholder to fill in


def test_app_section_in_lab_toml():
    lab = from_mapping({"app": {"mode": "reference", "stack": "s", "max_ttl": 10}}, "lab.toml", Path("."), "t")
    assert (lab.app.mode, lab.app.stack, lab.app.max_ttl) == ("reference", "s", 10.0)
    assert from_mapping({}, "lab.toml", Path("."), "t").app.mode == "attendee"  # the default: your own stack
    with pytest.raises(ConfigError, match=r"app\.mode.*not a mode"):
        from_mapping({"app": {"mode": "demo"}}, "lab.toml", Path("."), "t")
    with pytest.raises(ConfigError, match=r"app\.colour.*unknown key"):
        from_mapping({"app": {"colour": "blue"}}, "lab.toml", Path("."), "t")


def test_the_app_digest_follows_its_sources(tmp_path, monkeypatch):
    digest = microservices.app_digest()
    assert digest == microservices.app_digest()
    copy = tmp_path / "apps" / "registry-demo"
    copy.mkdir(parents=True)
    (tmp_path / "images").mkdir()
    for name in microservices.SOURCES:
        (copy / name).write_bytes((microservices.app_dir() / name).read_bytes())
    monkeypatch.setenv("WORKSHOP_FIXTURES", str(tmp_path))
    assert microservices.app_digest() == digest
    (copy / "backend.py").write_text("# changed\n")
    assert microservices.app_digest() != digest
