"""Certificates for the labs that are reached over TLS, made at `lab up` with the openssl command.

File names are the conventions clients expect, so a lab reached this way is configured as an
attendee's VM would be: Docker's ``DOCKER_CERT_PATH`` folder holds ``ca.pem``, ``cert.pem`` and
``key.pem`` (the client's); the engine gets ``server-cert.pem`` and ``server-key.pem``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pytest_workshop.errors import LabError

DAYS = "30"


def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise LabError(f"openssl {args[0]} failed: {r.stderr.strip()[-300:]}", hint="the lab needs the openssl command")


def make_bundle(directory: Path, server_ips: list[str], server_names: list[str]) -> Path:
    """A CA, a server certificate for those addresses and names, a client certificate. Returns the
    client's folder (``directory/client``: ca.pem, cert.pem, key.pem). Kept when present."""
    client = directory / "client"
    if (client / "key.pem").is_file():
        return client
    directory.mkdir(parents=True, exist_ok=True)
    client.mkdir(exist_ok=True)
    d = directory
    # the arguments as typed: none holds a space (the subjects are single words)
    _openssl(
        *f"req -x509 -newkey rsa:2048 -nodes -days {DAYS} -subj /CN=workshop-lab-ca".split(),
        *["-keyout", "ca-key.pem", "-out", "ca.pem"],
        cwd=d,
    )
    san = ",".join([*(f"IP:{ip}" for ip in server_ips), *(f"DNS:{n}" for n in server_names)])
    # clientAuth too: etcd's own gRPC gateway dials the server with the server's certificate when
    # client certificates are required
    (d / "server.ext").write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who, cn in (("server", server_names[0] if server_names else "lab"), ("client", "workshop-client")):
        _openssl(*f"req -newkey rsa:2048 -nodes -subj /CN={cn} -keyout {who}-key.pem -out {who}.csr".split(), cwd=d)
        _openssl(
            *f"x509 -req -in {who}.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days {DAYS}".split(),
            *f"-extfile {who}.ext -out {who}-cert.pem".split(),
            cwd=d,
        )
    for src, dst in (("ca.pem", "ca.pem"), ("client-cert.pem", "cert.pem"), ("client-key.pem", "key.pem")):
        (client / dst).write_bytes((d / src).read_bytes())
    for key in (d / "ca-key.pem", d / "server-key.pem", d / "client-key.pem", client / "key.pem"):
        key.chmod(0o600)
    return client
