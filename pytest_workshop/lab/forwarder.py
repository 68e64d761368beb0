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
import queue
import signal
import socket
import sys
import threading
from concurrent.futures import Future

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 2.0


class NetnsConnector(threading.Thread):
    """A thread that has entered the target netns and opens sockets there on request."""

    def __init__(self, netns: str) -> None:
        super().__init__(daemon=True, name="connector")
        self.netns = netns
        self.requests: queue.Queue[tuple[tuple[str, int], Future[socket.socket]]] = queue.Queue()
        self.ready: Future[None] = Future()

    def run(self) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
            # setns changes only this thread's namespace: the listeners stay on the host's loopback.
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns({self.netns})")
            os.close(fd)
            self.ready.set_result(None)
        except Exception as e:
            self.ready.set_exception(e)
            return
        while True:
            addr, fut = self.requests.get()
            try:
                sock = socket.create_connection(addr, timeout=CONNECT_TIMEOUT)
                sock.settimeout(None)
                fut.set_result(sock)
            except OSError as e:
                fut.set_exception(e)

    def connect(self, addr: tuple[str, int]) -> socket.socket:
        fut: Future[socket.socket] = Future()
        self.requests.put((addr, fut))
        return fut.result(CONNECT_TIMEOUT + 1)


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
    while True:
        client, _ = listener.accept()
        try:
            remote = connector.connect(upstream)
        except Exception:
            client.close()  # the node is down or cut off: the caller sees a reset, as it would
            continue
        for a, b in ((client, remote), (remote, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_workshop.lab.forwarder")
    parser.add_argument("--netns", required=True)
    parser.add_argument("mappings", nargs="+", metavar="LISTEN_HOST:PORT=UPSTREAM_HOST:PORT")
    args = parser.parse_args(argv)
    connector = NetnsConnector(args.netns)
    connector.start()
    connector.ready.result(5)
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
