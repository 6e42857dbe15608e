"""TlsSocket over real loopback TLS: interoperates with ssl.SSLSocket, checks certificates, one recv per message."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from taggerhub import certs
from taggerhub.tls import TlsSocket, client_context, connect_tls


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    certs.init(directory, ["localhost", "127.0.0.1"])
    return directory


def server_context(pki: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.pem", pki / "server-key.pem")
    return context


def serve_once(pki: Path, handler, ours: bool) -> tuple[tuple[str, int], threading.Thread, list]:
    """Accept one TLS connection (with TlsSocket or ssl.SSLSocket) and run ``handler`` on it in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[BaseException] = []

    def run() -> None:
        raw, _ = listener.accept()
        listener.close()
        raw.settimeout(10)
        try:
            if ours:
                conn = TlsSocket(raw, server_context(pki), server_side=True)
                conn.do_handshake()
            else:
                conn = server_context(pki).wrap_socket(raw, server_side=True)
            with conn:
                handler(conn)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname(), thread, errors


def echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def recv_exactly(conn: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = conn.recv_into(view[got:], size - got)
        assert n, "connection closed early"
        got += n
    return bytes(buffer)


@pytest.mark.parametrize("server_is_ours", [True, False], ids=["TlsSocket server", "SSLSocket server"])
def test_small_and_large_messages_cross_intact_and_close_cleanly(pki, server_is_ours):
    address, thread, errors = serve_once(pki, echo, server_is_ours)
    conn = connect_tls(socket.create_connection(address, timeout=10), client_context(str(pki / "ca.pem")),
                       "localhost")
    assert conn.version() in ("TLSv1.2", "TLSv1.3") and conn.getpeercert()["subject"]
    for size in (1, 250, 16 * 1024 + 1, 3 * 1024 * 1024 + 7):  # one record, several, larger than WRITE_CHUNK
        message = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        conn.sendall(message)
        assert recv_exactly(conn, size) == message
    conn.sendall(memoryview(b"abc" * 10).cast("B"))
    assert recv_exactly(conn, 30) == b"abc" * 10
    conn.close()
    thread.join(10)
    assert not errors


def test_client_with_our_socket_refuses_a_server_from_another_ca(pki, tmp_path):
    foreign = tmp_path / "foreign"
    certs.init(foreign, ["localhost"])
    address, thread, _errors = serve_once(pki, echo, True)
    with pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"):
        connect_tls(socket.create_connection(address, timeout=10), client_context(str(foreign / "ca.pem")),
                    "localhost")
    thread.join(10)


def test_peer_closing_reads_as_end_of_stream(pki):
    address, thread, errors = serve_once(pki, lambda conn: conn.sendall(b"bye"), True)
    conn = connect_tls(socket.create_connection(address, timeout=10), client_context(str(pki / "ca.pem")),
                       "localhost")
    assert recv_exactly(conn, 3) == b"bye"
    assert conn.recv(100) == b""
    thread.join(10)
    assert not errors


def test_each_small_message_takes_one_receive_system_call(pki, monkeypatch):
    """SSLSocket reads a record in two calls (its header, then its body); TlsSocket in one."""
    address, thread, errors = serve_once(pki, echo, False)
    conn = connect_tls(socket.create_connection(address, timeout=10), client_context(str(pki / "ca.pem")),
                       "localhost")
    conn.sendall(b"warm-up")  # TLS 1.3 session tickets arrive before the first reply
    assert recv_exactly(conn, 7) == b"warm-up"
    calls = []
    plain_recv = socket.socket.recv

    def counting_recv(self, *args):
        calls.append(args)
        return plain_recv(self, *args)

    monkeypatch.setattr(socket.socket, "recv", counting_recv)
    for i in range(50):
        conn.sendall(b"%03d" % i * 80)
        assert conn.recv(65536) == b"%03d" % i * 80
    monkeypatch.undo()
    assert len(calls) == 50
    conn.close()
    thread.join(10)
    assert not errors
