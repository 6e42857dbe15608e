"""TLS for the server and for clients: contexts from the lab CA's files, and the TLS socket both use.

Pyro5 keeps one process-wide SSL configuration; taggerhub builds its own
contexts instead, so a client process can talk to several servers with
different CAs and client certificates, one per proxy. :class:`TlsSocket`
carries a connection's TLS with fewer system calls per message than
:class:`ssl.SSLSocket` (see there); the certificates come from
:mod:`taggerhub.certs`.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from pathlib import Path
from typing import Any

from .config import ConfigError, TlsSettings


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


READ_AHEAD = 256 * 1024  # one recv takes whole TLS records (up to 16 KiB each) and what follows them
WRITE_CHUNK = 256 * 1024  # large sends are encrypted and sent in pieces, never all at once in memory


class TlsSocket(socket.socket):
    """A TLS connection whose records are read with one system call each, not two.

    :class:`ssl.SSLSocket` lets OpenSSL read the socket, and without read-ahead
    (which Python cannot switch on) OpenSSL reads every record in two system calls:
    its 5-byte header, then its body. Here the socket is read by us into a memory
    BIO, as much as is there (usually a whole small message in one call), and
    OpenSSL decrypts from memory; writes are encrypted into memory and sent with
    one ``sendall``. Same TLS, same certificate checks (the context's), same
    errors (:class:`ssl.SSLError`); it is a real socket underneath, so timeouts,
    ``shutdown`` and ``getpeername`` work as on any socket. One thread at a time
    may read, and one at a time may write (as Pyro5 connections are used).
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_side: bool,
                 server_hostname: str | None = None):
        timeout = sock.gettimeout()
        super().__init__(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.settimeout(timeout)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                     server_hostname=None if server_side else server_hostname)

    def do_handshake(self) -> None:
        """Run the TLS handshake on the (blocking or timed) socket; raise ssl.SSLError if it fails."""
        while True:
            try:
                self._tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise ssl.SSLEOFError("connection closed during the TLS handshake") from None
            except ssl.SSLError:
                with contextlib.suppress(OSError):  # tell the peer why (an alert), if it still listens
                    self._flush()
                raise

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._tls.getpeercert(binary_form)

    def cipher(self) -> tuple[str, str, int] | None:
        return self._tls.cipher()

    def version(self) -> str | None:
        return self._tls.version()

    def pending(self) -> int:
        return self._tls.pending()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:  # type: ignore[override]
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        if not self._incoming.pending and not self._tls.pending() and not self._fill():
            return b""  # nothing buffered: wait for the socket first, without a failed decrypt attempt
        while True:
            try:
                data = self._tls.read(bufsize)
            except ssl.SSLWantReadError:  # only part of a record, or only a session ticket, was there
                if not self._fill():
                    return b""
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            if self._outgoing.pending:  # the read produced protocol data for the peer (e.g. a key update)
                self._flush()
            return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:  # type: ignore[override]
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        nbytes = nbytes or memoryview(buffer).nbytes
        if not self._incoming.pending and not self._tls.pending() and not self._fill():
            return 0
        while True:
            try:
                count = self._tls.read(nbytes, buffer)
            except ssl.SSLWantReadError:
                if not self._fill():
                    return 0
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return 0
            if self._outgoing.pending:
                self._flush()
            return count

    def sendall(self, data: Any, flags: int = 0) -> None:  # type: ignore[override]
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        if (data.nbytes if isinstance(data, memoryview) else len(data)) <= WRITE_CHUNK:
            self._tls.write(data)
            super().sendall(self._outgoing.read())
            return
        with memoryview(data) as view, view.cast("B") as octets:
            for start in range(0, len(octets), WRITE_CHUNK):
                self._tls.write(octets[start:start + WRITE_CHUNK])
                super().sendall(self._outgoing.read())

    def send(self, data: Any, flags: int = 0) -> int:  # type: ignore[override]
        self.sendall(data, flags)
        return len(data)

    def sendmsg(self, *args: Any, **kwargs: Any) -> int:  # type: ignore[override]
        raise NotImplementedError("sendmsg is not supported on a TLS socket; use sendall")

    def _fill(self) -> bool:
        """Read what the socket has (at least one byte; blocks like the socket); False at end of stream."""
        data = super().recv(READ_AHEAD)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    def _flush(self) -> None:
        if self._outgoing.pending:
            super().sendall(self._outgoing.read())


def connect_tls(sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None) -> TlsSocket:
    """Client side: TLS over a connected socket, handshake done (server verified by ``context``)."""
    tls = TlsSocket(sock, context, server_side=False, server_hostname=server_hostname)
    try:
        tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    return tls
