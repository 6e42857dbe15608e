"""The accept loop survives a worker thread that cannot be started: that one connection is refused."""

from __future__ import annotations

import selectors
import socket
import time

from Pyro5 import protocol, serializers

from taggerhub.config import Settings
from taggerhub.server.listener import HubSocketServer
from taggerhub.wire import codecs


class _NoThreads:
    def process(self, job: object) -> None:
        raise RuntimeError("can't start new thread")

    def close(self) -> None:
        pass


def connect_frame() -> bytes:
    codecs.install()
    data = serializers.serializers_by_id[4].dumps({"handshake": {}, "object": "TimeTaggerRPC"})
    return protocol.SendingMessage(protocol.MSG_CONNECT, 0, 0, 4, data).data


def test_accept_loop_refuses_when_no_thread_can_start_and_keeps_going():
    refusals: list[tuple[str, str]] = []
    server = HubSocketServer.__new__(HubSocketServer)
    server.sock = socket.create_server(("127.0.0.1", 0))
    server.shutting_down = False
    server.daemon = None
    server.housekeeper = None
    server.pool = _NoThreads()
    server._selector = selectors.DefaultSelector()
    server._selector.register(server.sock, selectors.EVENT_READ, server)
    server.adopt(Settings(), None, lambda reason, address, detail: refusals.append((reason, detail)),
                 lambda reason: None)
    port = server.sock.getsockname()[1]
    try:
        for round_ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
                client.sendall(connect_frame())
                deadline = time.monotonic() + 5
                while len(refusals) <= round_ and time.monotonic() < deadline:
                    server.events([server.sock])  # must not raise
                client.settimeout(2)
                assert client.recv(1) == b""  # refused: closed by the server
        assert [r for r, _ in refusals] == ["busy"] * 3
        assert "can't start new thread" in refusals[0][1]
    finally:
        server.stage.close()
        server.sock.close()
