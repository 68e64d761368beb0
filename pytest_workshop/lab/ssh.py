"""An SSH server inside a lab machine (Debian's openssh-server), as an attendee VM has one: the
lab is then reached the way instructors reach VMs, its testinfra host and its Docker engine over
``ssh://`` (``docker system dial-stdio`` on the machine, as the docker CLI does it).

Keys are made at `lab up`: the server's host key, and a client key whose public half is the only
authorized one. What a client needs is written as an ssh home (``<dir>/home/.ssh``: config with a
host alias per machine, known_hosts, the key), because ssh clients, paramiko (docker-py) included,
read ``~/.ssh`` and nothing else: ``HOME=<dir>/home pytest ...``, or ``Include`` its config.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pytest_workshop.errors import LabError

SSHD = "/usr/sbin/sshd"
SSH_PORT = 22


def alias(prefix: str) -> str:
    """A lab's first machine, as a Host of the ssh home's config."""
    return f"{prefix}-node1"


def _keygen(path: Path, comment: str) -> None:
    if path.is_file():
        return
    r = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if r.returncode != 0:
        raise LabError(f"ssh-keygen failed: {r.stderr.strip()[-200:]}", hint="the lab needs openssh-client")


def prepare(directory: Path, docker_socket: str) -> Path:
    """Keys and sshd_config for one machine; returns the config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    _keygen(directory / "host_key", "workshop-lab-host")
    _keygen(directory / "id_ed25519", "workshop-lab-client")
    (directory / "authorized_keys").write_text((directory / "id_ed25519.pub").read_text())
    config = directory / "sshd_config"
    config.write_text(
        f"""# written by `workshop lab up`: the lab machine's SSH server
Port {SSH_PORT}
ListenAddress 0.0.0.0
HostKey {directory}/host_key
PidFile {directory}/sshd.pid
AuthorizedKeysFile {directory}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
# docker-py (paramiko) opens an SSH session per HTTP connection, all over one connection: sshd's
# default of 10 refused parallel checks ("no more sessions"; ChannelException 'Connect failed')
MaxSessions 100
# `docker system dial-stdio` over ssh:// must reach this machine's engine
SetEnv DOCKER_HOST=unix://{docker_socket}
Subsystem sftp internal-sftp
"""
    )
    return config


def sshd_argv(config: Path) -> list[str]:
    # -D: stay in the foreground (the machine's init reaps it); -e: log to stderr, i.e. the log file.
    # Its privilege-separation directory is the host's /run/sshd (a machine shares the host's /run).
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    return [SSHD, "-D", "-e", "-f", str(config)]


def write_client_home(home: Path, machines: dict[str, tuple[int, Path]]) -> Path:
    """``home/.ssh`` for clients: per machine alias -> (port on 127.0.0.1, its ssh directory)."""
    dot = home / ".ssh"
    dot.mkdir(parents=True, exist_ok=True, mode=0o700)
    config, known = [], []
    for alias, (port, directory) in sorted(machines.items()):
        config.append(
            f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {directory}/id_ed25519\n"
            f"  IdentitiesOnly yes\n  UserKnownHostsFile {dot}/known_hosts\n  StrictHostKeyChecking yes\n"
        )
        key_type, key = (directory / "host_key.pub").read_text().split()[:2]
        known.append(f"[127.0.0.1]:{port} {key_type} {key}\n")
    (dot / "config").write_text("".join(config))
    (dot / "known_hosts").write_text("".join(known))
    for f in (dot / "config", dot / "known_hosts"):
        f.chmod(0o600)
    return dot / "config"
