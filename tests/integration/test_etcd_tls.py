"""The etcd client over TLS with client certificates, against a real etcd on loopback.

The client's one reach into aetcd's private attributes is its TLS channel (components/etcd
docstring); this proves it works with the pinned aetcd, and that a wrong certificate is a
FAIL of etcd with a hint, not a hang or a traceback.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from pytest_workshop.components.etcd import connect
from pytest_workshop.components.waiting import wait_for
from pytest_workshop.config import EtcdConfig, Timeouts
from pytest_workshop.errors import WorkshopError


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_pki(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1, and a client certificate, in etcdctl's names."""
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=workshop-test-ca",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.crt"),
    )
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.csr"),
        )
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl(
            "x509",
            "-req",
            "-in",
            str(d / f"{name}.csr"),
            "-CA",
            str(d / "ca.crt"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(d / f"{name}.ext"),
            "-out",
            str(d / f"{name}.crt"),
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory):
    d = tmp_path_factory.mktemp("etcd-tls")
    make_pki(d)
    client_port, peer_port = free_port(), free_port()
    url = f"https://127.0.0.1:{client_port}"
    log = (d / "etcd.log").open("wb")
    proc = subprocess.Popen(
        [
            "/usr/bin/etcd",
            "--name",
            "tls",
            "--data-dir",
            str(d / "data"),
            "--listen-client-urls",
            url,
            "--advertise-client-urls",
            url,
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer_port}",
            "--initial-cluster",
            f"tls=http://127.0.0.1:{peer_port}",
            "--cert-file",
            str(d / "server.crt"),
            "--key-file",
            str(d / "server.key"),
            "--client-cert-auth",
            "--trusted-ca-file",
            str(d / "ca.crt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        # etcd accepts TCP before it serves; its log says when it does
        wait_for(
            "the TLS etcd did not serve",
            lambda: b"serving client requests" in (d / "etcd.log").read_bytes(),
            15,
            abort=lambda: None if proc.poll() is None else "it exited",
            observe=lambda: (d / "etcd.log").read_text()[-2000:],
        )
        yield d, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def test_client_certificates_work(tls_etcd):
    d, url = tls_etcd
    cfg = EtcdConfig(endpoints=[url], cacert=d / "ca.crt", cert=d / "client.crt", key=d / "client.key")
    client = connect(cfg, Timeouts(connect=2, request=3))
    try:
        client.put(b"/tls-test/a", b"1")
        got = client.get(b"/tls-test/a")
        assert got is not None and got.value == b"1"
        assert len(client.members()) == 1
    finally:
        client.close()


@pytest.mark.parametrize(
    "how",
    [
        "no client certificate",  # the server asks for one
        "plaintext to a TLS endpoint",  # http:// where the lab serves https://
        "an untrusted CA",
    ],
)
def test_a_tls_mismatch_is_said_as_such(tls_etcd, how):
    d, url = tls_etcd
    cfg = {
        "no client certificate": EtcdConfig(endpoints=[url], cacert=d / "ca.crt"),
        "plaintext to a TLS endpoint": EtcdConfig(endpoints=[url.replace("https:", "http:")]),
        "an untrusted CA": EtcdConfig(
            endpoints=[url], cacert=d / "client.crt", cert=d / "client.crt", key=d / "client.key"
        ),
    }[how]
    with pytest.raises(WorkshopError) as failure:
        connect(cfg, Timeouts(connect=2, request=3)).close()
    # the cause the evidence shows: TLS, not "start etcd"
    assert "ETCDCTL_CACERT" in failure.value.hint and "systemctl start" not in failure.value.hint, failure.value
