"""TCP forwarder: loopback ports in the host's namespace -> addresses on the lab segment.

The lab's nodes live in namespaces with no route to the host (by design), yet pytest runs in
the host's namespace. This process listens on 127.0.0.1 and opens each upstream connection from
inside the lab's client namespace, like a laptop plugged into the lab switch: a partitioned or
crashed node is unreachable through it, exactly as it would be for an attendee.

    python -m pytest_workshop.lab.forwarder --netns wsl-cl 127.0.0.1:23791=10.251.0.11:2379 ...
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
import threading
from concurrent.futures import Future

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 2.0


class NetnsConnector:
    """Opens TCP connections from inside a network namespace, each on a thread of its own.

    setns() changes only the calling thread's namespace, so every connect runs on a short-lived
    thread that enters the namespace first: the listeners stay on the host's loopback, and a
    connect to a cut-off node (which hangs until CONNECT_TIMEOUT) never holds up the others — one
    connector thread serving a queue did, and a burst of retries to a partitioned member timed out
    every other member's connections behind it.
    """

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.path = f"/run/netns/{netns}"
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"no network namespace {netns} ({self.path})")

    def _enter(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns({self.netns})")
        finally:
            os.close(fd)

    def connect(self, addr: tuple[str, int], timeout: float = CONNECT_TIMEOUT) -> socket.socket:
        fut: Future[socket.socket] = Future()

        def run() -> None:
            try:
                self._enter()
                sock = socket.create_connection(addr, timeout=timeout)
                sock.settimeout(None)
                fut.set_result(sock)
            except BaseException as e:
                fut.set_exception(e)

        threading.Thread(target=run, daemon=True, name=f"connect-{addr[0]}:{addr[1]}").start()
        return fut.result(timeout + 1)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(listener: socket.socket, upstream: tuple[str, int], connector: NetnsConnector) -> None:
    # Each client on its own thread: a connect that hangs (the node is cut off) holds up no other.
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_bridge, args=(client, upstream, connector), daemon=True).start()


def _bridge(client: socket.socket, upstream: tuple[str, int], connector: NetnsConnector) -> None:
    try:
        remote = connector.connect(upstream)
    except Exception:
        client.close()  # the node is down or cut off: the caller sees a reset, as it would
        return
    threading.Thread(target=_pump, args=(remote, client), daemon=True).start()
    _pump(client, remote)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_workshop.lab.forwarder")
    parser.add_argument("--netns", required=True)
    parser.add_argument("mappings", nargs="+", metavar="LISTEN_HOST:PORT=UPSTREAM_HOST:PORT")
    args = parser.parse_args(argv)
    connector = NetnsConnector(args.netns)
    for mapping in args.mappings:
        listen, upstream = mapping.split("=")
        lhost, lport = listen.rsplit(":", 1)
        uhost, uport = upstream.rsplit(":", 1)
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((lhost, int(lport)))
        listener.listen(64)
        threading.Thread(target=_serve, args=(listener, (uhost, int(uport)), connector), daemon=True).start()
    print("forwarding " + " ".join(args.mappings), flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sys.exit(main())
