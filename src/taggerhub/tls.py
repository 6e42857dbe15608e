"""TLS contexts for the server and for clients, from the lab CA's files (see :mod:`taggerhub.certs`).

Pyro5 keeps one process-wide SSL configuration; taggerhub builds its own
contexts instead, so a client process can talk to several servers with
different CAs and client certificates, one per proxy.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from Pyro5 import errors, socketutil

from .config import ConfigError, TlsSettings

READ_CHUNK = 64 * 1024


class BufferedConnection(socketutil.SocketConnection):
    """A Pyro5 connection that reads TLS records whole and serves Pyro5's small reads from a buffer.

    Pyro5 reads each message in three pieces (6 bytes, 34 bytes, payload); on a TLS
    socket each piece is one SSL_read, which is most of TLS's cost for small calls.
    Plain sockets keep Pyro5's own reads (MSG_WAITALL).
    """

    def __init__(self, sock: socket.socket, objectId: str | None = None):
        super().__init__(sock, objectId)
        self._buffered = isinstance(sock, ssl.SSLSocket)
        self._chunk = memoryview(bytearray(READ_CHUNK)) if self._buffered else memoryview(b"")
        self._start = self._end = 0  # unread bytes are self._chunk[self._start:self._end]

    def recv(self, size: int) -> bytes:
        if not self._buffered:
            return super().recv(size)
        start, end = self._start, self._end
        if end - start >= size:  # the usual case: served from the record already read
            self._start = start + size
            return bytes(self._chunk[start:start + size])
        if size > len(self._chunk):
            return self._recv_large(size)
        chunk = self._chunk
        if start:  # move what is left to the front
            chunk[: end - start] = chunk[start:end]
            end, start = end - start, 0
        while end < size:
            end += self._read_into(chunk[end:])
        self._start, self._end = size, end
        return bytes(chunk[:size])

    def _read_into(self, view: memoryview) -> int:
        try:
            received = self.sock.recv_into(view)
        except TimeoutError:
            raise errors.TimeoutError("receiving: timeout") from None
        except OSError as exc:
            raise errors.ConnectionClosedError(f"receiving: connection lost: {exc}") from None
        if not received:
            raise errors.ConnectionClosedError("receiving: not enough data")
        return received

    def _recv_large(self, size: int) -> bytes:
        """Read a big payload (array data) in large pieces; memory grows only as bytes arrive."""
        parts = [bytes(self._chunk[self._start:self._end])]
        filled = len(parts[0])
        self._start = self._end = 0
        while filled < size:
            try:
                part = self.sock.recv(min(size - filled, 1 << 20))
            except TimeoutError:
                raise errors.TimeoutError("receiving: timeout") from None
            except OSError as exc:
                raise errors.ConnectionClosedError(f"receiving: connection lost: {exc}") from None
            if not part:
                raise errors.ConnectionClosedError("receiving: not enough data")
            parts.append(part)
            filled += len(part)
        return b"".join(parts)

def _need(path: str, what: str) -> str:
    if not path:
        raise ConfigError(f"tls: {what} is not set")
    if not Path(path).is_file():
        raise ConfigError(f"tls: {what} {path!r} does not exist")
    return path


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """Server side: our certificate; client certificates required, optional (with a CA) or ignored."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(_need(tls.cert_file, "tls.cert_file"), _need(tls.key_file, "tls.key_file"))
        if tls.ca_file:
            context.load_verify_locations(cafile=_need(tls.ca_file, "tls.ca_file"))
    except ssl.SSLError as exc:
        raise ConfigError(f"tls: cannot load certificate or key: {exc}") from None
    if tls.require_client_cert:
        if not tls.ca_file:
            raise ConfigError("tls.require_client_cert needs tls.ca_file (the CA that signs client certificates)")
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_OPTIONAL if tls.ca_file else ssl.CERT_NONE
    return context


def client_context(ca_file: str, cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """Client side: verify the server against ``ca_file``; present a client certificate if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=_need(ca_file, "CA file"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        try:
            context.load_cert_chain(_need(cert_file, "client certificate"), key_file or None)
        except ssl.SSLError as exc:
            raise ConfigError(f"tls: cannot load client certificate {cert_file!r}: {exc}") from None
    return context
