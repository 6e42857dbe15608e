"""Loopback helpers shared by the bench scripts: a free port, waiting for a listener, a bare echo."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def _no_work() -> None:
    return None


def echo_p50(wrap_server: Callable[[socket.socket], Any], wrap_client: Callable[[socket.socket], Any],
             calls: int, between: Callable[[], None] = _no_work, size: int = 250) -> float:
    """p50 seconds of a ``size``-byte echo round trip on loopback, no RPC: the transport's own cost.

    ``wrap_server``/``wrap_client`` turn the accepted and the connecting socket into what is
    measured (e.g. a TLS socket); ``between`` runs on both sides between messages, standing in
    for an RPC's own work.
    """
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = wrap_server(conn)
        while True:
            try:
                data = conn.recv(65536)
            except Exception:  # pyOpenSSL raises on a clean TLS close
                break
            if not data:
                break
            between()
            conn.sendall(data)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    sock = socket.create_connection(listener.getsockname())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock = wrap_client(sock)
    message, timings = b"x" * size, []
    for _ in range(calls):
        started = time.perf_counter()
        sock.sendall(message)
        received = 0
        while received < len(message):
            received += len(sock.recv(65536))
        timings.append(time.perf_counter() - started)
        between()
    sock.close()
    thread.join(5)
    listener.close()
    return sorted(timings)[len(timings) // 2]
