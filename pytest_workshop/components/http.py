"""One bounded HTTP request, for every plain probe of the lab: a service's version document, etcd's
/health, an engine's /_ping over its Unix socket, kuryr's activation inside the DevStack machine.

The socket is whatever reaches the service: TCP (default), a Unix socket (``unix_socket``), or one
you make (``connect``, e.g. from inside a network namespace). Nothing here raises for a lab that
does not answer: the answer says so (``status`` None and ``error``), and the caller decides what
that means.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class HttpAnswer:
    status: int | None  # None: nothing answered (see error)
    body: bytes = b""
    error: str = ""  # why nothing answered: "connection refused", "timed out after 2 s", ...

    @property
    def detail(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else self.error

    def json(self) -> Any:
        """The body as JSON; None if it is not JSON."""
        try:
            return json.loads(self.body.decode() or "null")
        except ValueError:
            return None


class _Connection(http.client.HTTPConnection):
    """http.client over a socket someone else opens (a Unix socket, or one from another netns)."""

    def __init__(self, host: str, timeout: float, make_socket: Callable[[], socket.socket]) -> None:
        super().__init__(host, timeout=timeout)
        self._make_socket = make_socket

    def connect(self) -> None:
        self.sock = self._make_socket()
        self.sock.settimeout(self.timeout)


def request(
    url: str,
    timeout: float,
    method: str = "GET",
    body: bytes | None = None,
    ssl_context: ssl.SSLContext | None = None,
    unix_socket: str | None = None,
    connect: Callable[[], socket.socket] | None = None,
) -> HttpAnswer:
    """``method url`` with every step bounded by ``timeout``; credentials in the URL are never sent
    in it nor shown (``user:password@`` is dropped)."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if unix_socket is not None:

        def unix() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(timeout)
            sock.connect(unix_socket)
            return sock

        conn = _Connection("localhost", timeout, unix)
    elif connect is not None:
        conn = _Connection(parts.hostname or "localhost", timeout, connect)
    elif parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout, context=ssl_context)
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        headers = {"Content-Length": str(len(body or b""))} if method != "GET" else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return HttpAnswer(response.status, response.read())
    except (OSError, http.client.HTTPException) as e:
        return HttpAnswer(None, error=_why(e, timeout))
    finally:
        conn.close()


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout) or "timed out" in str(exc):
        return f"did not answer within {timeout:g} s ([timeouts] request; hung or paused?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, FileNotFoundError):
        return f"no socket ({exc.filename or exc})"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text)[:160]
