"""Bare 250-byte TLS echo on loopback, three ways, to see which TLS implementation a faster RPC could use.

Each round trip has ``--work-us`` of Python work on both sides between messages (an RPC's
stand-in). Variants: plain TCP; Python's ``ssl`` (the system OpenSSL); ``ssl`` with OpenSSL
read-ahead turned on through ctypes (one ``read`` per record instead of two; CPython-only, an
experiment, not something taggerhub does); pyOpenSSL (the OpenSSL bundled with ``cryptography``),
when installed. Prints p50 per variant.
"""

from __future__ import annotations

import argparse
import ctypes
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopback import echo_p50
from taggerhub.access import certs

SSL_CTRL_SET_READ_AHEAD = 41
SSL_CTRL_GET_READ_AHEAD = 40


def busy(seconds: float) -> None:
    """Python work between messages: allocate small objects until the time is up."""
    end = time.perf_counter() + seconds
    junk = []
    while time.perf_counter() < end:
        junk.append({"a": [1, 2, 3], "b": "x" * 50})


def with_read_ahead(context: ssl.SSLContext) -> ssl.SSLContext:
    """Turn on OpenSSL read-ahead for ``context`` (reads the SSL_CTX pointer out of CPython's object)."""
    libssl = ctypes.CDLL("libssl.so.3")
    libssl.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    libssl.SSL_CTX_ctrl.restype = ctypes.c_long
    pointer = ctypes.c_void_p.from_address(id(context) + ctypes.sizeof(ctypes.c_ssize_t) * 2).value
    libssl.SSL_CTX_ctrl(pointer, SSL_CTRL_SET_READ_AHEAD, 1, None)
    if libssl.SSL_CTX_ctrl(pointer, SSL_CTRL_GET_READ_AHEAD, 0, None) != 1:
        raise RuntimeError("read-ahead did not take")
    return context


def stdlib_wrappers(work: Path, read_ahead: bool) -> tuple[Callable, Callable]:
    def server(conn: socket.socket) -> Any:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(work / "server.pem", work / "server-key.pem")
        return (with_read_ahead(context) if read_ahead else context).wrap_socket(conn, server_side=True)

    def client(sock: socket.socket) -> Any:
        context = ssl.create_default_context(cafile=str(work / "ca.pem"))
        return (with_read_ahead(context) if read_ahead else context).wrap_socket(sock, server_hostname="localhost")

    return server, client


def pyopenssl_wrappers(work: Path) -> tuple[Callable, Callable]:
    from OpenSSL import SSL

    def server(conn: socket.socket) -> Any:
        context = SSL.Context(SSL.TLS_METHOD)
        context.use_certificate_chain_file(str(work / "server.pem"))
        context.use_privatekey_file(str(work / "server-key.pem"))
        wrapped = SSL.Connection(context, conn)
        wrapped.set_accept_state()
        wrapped.do_handshake()
        return wrapped

    def client(sock: socket.socket) -> Any:
        context = SSL.Context(SSL.TLS_METHOD)
        context.load_verify_locations(str(work / "ca.pem"))
        context.set_verify(SSL.VERIFY_PEER, lambda *args: bool(args[-1]))
        wrapped = SSL.Connection(context, sock)
        wrapped.set_tlsext_host_name(b"localhost")
        wrapped.set_connect_state()
        wrapped.do_handshake()
        return wrapped

    return server, client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--work-us", type=float, default=30.0, help="Python work per side between messages")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="taggerhub-tls-echo-"))
    certs.init(work, ["localhost", "127.0.0.1"])
    variants: dict[str, tuple[Callable, Callable]] = {
        "plain TCP": (lambda c: c, lambda s: s),
        "ssl (system OpenSSL)": stdlib_wrappers(work, read_ahead=False),
        "ssl + read-ahead": stdlib_wrappers(work, read_ahead=True),
    }
    try:
        import OpenSSL

        variants[f"pyOpenSSL {OpenSSL.SSL.OpenSSL_version(OpenSSL.SSL.OPENSSL_VERSION).decode()}"] = (
            pyopenssl_wrappers(work))
    except ImportError:
        print("pyOpenSSL not installed: its row is left out", file=sys.stderr)
    print(f"{ssl.OPENSSL_VERSION}; {args.work_us:.0f} us of Python work per side between messages")
    for round_number in range(args.rounds):
        for name, (server, client) in variants.items():
            p50 = echo_p50(server, client, args.calls, between=lambda: busy(args.work_us / 1e6))
            print(f"round {round_number + 1}  {name:40s} p50 {p50 * 1e6:6.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
