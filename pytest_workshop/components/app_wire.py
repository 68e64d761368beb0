"""How the checks talk to lab5's app: requests through its frontend (one at a time, or a paced
stream under a change), health checks of its backends, and its registrations in etcd.

Requests are made from inside the app's own containers (``docker exec`` of a small python
script): the app's overlay is reachable only from containers attached to it.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
from dataclasses import dataclass
from typing import Any

from pytest_workshop.errors import CheckFailed

APP_PORT = 8080  # where every instance of the app listens, in its container
# Run inside the frontend's container with its python (busybox's static wget crashes on Debian):
# requests one after another (at most one every INTERVAL seconds), one JSON line per answer,
# TIMES of them or as many as fit in SECONDS; with "until-told" (RequestStream), until a line (or
# the end) comes on its standard input instead.
CLIENT = """
import json, sys, threading, time, urllib.request
path, times, seconds, timeout, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
stop = threading.Event()
if sys.argv[6:] == ["until-told"]:
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
end, i = time.monotonic() + seconds, 0
while not stop.is_set() and (i < times or time.monotonic() < end):
    i, started = i + 1, time.monotonic()
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d" % PORT + path, timeout=timeout) as r:
            print(json.dumps(json.loads(r.read())), flush=True)
    except Exception as e:
        print(json.dumps({"failed": str(e)[:120]}), flush=True)
    stop.wait(max(0.0, interval - (time.monotonic() - started)))
""".replace("PORT", str(APP_PORT))
HEALTH = """
import sys, urllib.request
for target in sys.argv[2:]:
    name, address = target.split("=", 1)
    try:
        urllib.request.urlopen("http://%s/health" % address, timeout=float(sys.argv[1])).read()
        print(name, "ok", flush=True)
    except Exception:
        print(name, "silent", flush=True)
"""


# --- a deployment, as the checks see it --------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    key: str
    instance: str
    address: str
    port: int
    lease: int
    raw: dict[str, Any]


def read_registrations(etcd: Any, prefix: str) -> dict[str, Registration]:
    """instance -> its registration under ``prefix``, read from etcd now."""
    out = {}
    for kv in etcd.get_prefix(prefix.encode()):
        key = kv.key.decode()
        instance = key[len(prefix) :]
        try:
            raw = json.loads(kv.value)
            out[instance] = Registration(key, instance, str(raw["address"]), int(raw["port"]), kv.lease, raw)
        except (ValueError, KeyError, TypeError) as e:
            raise CheckFailed(
                f"{key} does not follow the registration contract ({type(e).__name__}: {kv.value[:80]!r})",
                hint='the value must be JSON with "address" and "port" (suites/lab5/README.md)',
            ) from None
    return out


class RequestStream:
    """Requests to the frontend from inside its container, one every ``interval`` seconds, from
    creation until ``stop()``: one `docker exec` whose answers are read as they come.

    For a change under traffic (a rolling update, a scale-down): the requests go on without a
    gap, where rounds of short execs left one between rounds (each exec starts a python, 0.3-1 s
    on a busy machine), and at a pace, where back-to-back requests spent several CPU-seconds of
    a run on the app. At 20 a second, an instance that is unreachable for a tenth of a second
    is asked at least once whatever the balancing."""

    def __init__(
        self, container: Any, path: str = "/", interval: float = 0.05, timeout: float = 3, most: float = 120
    ) -> None:
        api = container.client.api
        argv = ["python3", "-c", CLIENT, path, "0", str(most), str(timeout), str(interval), "until-told"]
        exec_id = api.exec_create(container.id, argv, stdin=True)["Id"]
        stream = api.exec_start(exec_id, socket=True)
        # the socket itself: docker-py's SocketIO (unix, tcp), an SSL socket (https), or an SSH channel
        self._stream, self._raw = stream, getattr(stream, "_sock", stream)
        self._raw.settimeout(timeout + 2)  # the client prints an answer or a failure at least that often
        self.answers: list[dict[str, Any]] = []
        self._stopping = False
        self._reader = threading.Thread(target=self._read, name="workshop-requests", daemon=True)
        self._reader.start()

    def _recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._raw.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _read(self) -> None:
        pending = b""
        try:
            while True:
                try:
                    stream, size = struct.unpack(">BxxxL", self._recv_exactly(8))
                except EOFError:  # the client exited: told to, or not (its container stopped?)
                    if not self._stopping:
                        self.answers.append({"failed": "the requests ended before they were stopped"})
                    return
                data = self._recv_exactly(size)
                if stream != 1:
                    continue  # its stderr
                *lines, pending = (pending + data).split(b"\n")
                self.answers += [_answer(line) for line in lines if line.strip()]
        except Exception as e:  # the engine stopped answering: every request since is unknown
            self.answers.append({"failed": f"the requests' output from the engine broke off: {e}"[:120]})

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The answers that are not an instance's answer (a failed or refused request)."""
        return [a for a in self.answers if "answered_by" not in a]

    def stop(self, timeout: float = 5) -> list[dict[str, Any]]:
        """Tell the client to stop (it finishes its request and exits), read the rest; the answers.
        A line on its input, not a half-close: that would end TLS on an https engine."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._raw.sendall(b"stop\n")
        self._reader.join(timeout)
        with contextlib.suppress(OSError):
            self._stream.close()
        return self.answers


def _answer(line: bytes) -> dict[str, Any]:
    try:
        return dict(json.loads(line))
    except ValueError:
        return {"failed": line.decode(errors="replace").strip()[:120]}


def exec_in(container: Any, argv: list[str], timeout: float = 10) -> str:
    """Run a command in a container (bounded by busybox's ``timeout``); its output."""
    result = container.exec_run(["timeout", str(int(timeout) + 1), *argv])
    return str(result.output.decode(errors="replace"))


def ask(frontend: Any, path: str = "/", times: int = 1, seconds: float = 0, timeout: float = 3) -> list[dict[str, Any]]:
    """Requests to the frontend from inside its container, one after another: ``times`` of them,
    or as many as fit in ``seconds``. Each answer's JSON, or {"failed": why}."""
    argv = ["python3", "-c", CLIENT, path, str(times), str(seconds), str(timeout), "0"]
    out = exec_in(frontend, argv, timeout=times * (timeout + 0.5) + seconds + 5)
    return [_answer(line.encode()) for line in out.splitlines() if line.strip()]


def silent(frontend: Any, registrations: list[Registration], timeout: float = 2) -> list[str]:
    """The registered instances that do not answer GET /health from the frontend's container."""
    targets = [f"{r.instance}={r.address}:{r.port}" for r in registrations]
    out = exec_in(frontend, ["python3", "-c", HEALTH, str(timeout), *targets], timeout=len(targets) * timeout + 5)
    return sorted(line.split()[0] for line in out.splitlines() if line.endswith(" silent"))
