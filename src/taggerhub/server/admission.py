"""Connection admission: TLS and the Pyro5 connect frame, on non-blocking sockets, before any worker thread.

A worker thread per accepted socket let ~300 silent TCP connections hold every
worker for the whole handshake timeout. Here (as sshd's ``MaxStartups`` and
nginx's event loop do) a socket that has not finished its handshake costs no
thread: the accepting thread drives the TLS handshake (``SSLSocket.do_handshake``
on a non-blocking socket) and reads the whole Pyro5 connect frame with
``selectors``; only then does the connection get a worker. Pending sockets are
capped in total (``limits.pending_handshakes``) and per source address
(``limits.pending_per_source``), the oldest dropped first, and each must finish
within ``server.handshake_timeout_s``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from Pyro5 import errors, protocol

from ..config import ConfigError, Settings
from ..errors import RefusalReason
from ..wire.pyro_compat import HEADER as PYRO_HEADER
from ..wire.pyro_compat import MAGIC_NUMBER

HANDSHAKE_MAX_BYTES = 64 * 1024
# A pending socket is not dropped for its source's cap in its first second: 40 clients of one host
# connecting at once (some not yet scheduled to send their first bytes) must not push each other out.
# Past it, a source's silent sockets go first, oldest first. The total cap still holds at all times.
GRACE_S = 1.0
HEARD_GRACE_S = 5.0  # one that has sent bytes is at work (slowly, on a loaded host): it gets longer


@dataclass(eq=False)
class Pending:
    """A socket between accept() and a complete Pyro5 connect frame."""

    sock: socket.socket
    address: Any
    started: float
    tls_done: bool
    heard: bool = False  # any byte arrived: a client at work, dropped only after the silent ones
    trusted: bool = False  # from limits.trusted_networks: dropped only after everyone else's
    data: bytearray = field(default_factory=bytearray)

    @property
    def source(self) -> str:
        return str(self.address[0]) if isinstance(self.address, tuple) else str(self.address)


Refuse = Callable[[RefusalReason, Any, str], None]
Ready = Callable[[socket.socket, Any, bytes], None]


class HandshakeStage:
    """Pending handshakes in the accepting thread's selector; hands complete ones to ``ready``."""

    def __init__(self, settings: Settings, tls_context: ssl.SSLContext | None, selector: selectors.BaseSelector,
                 ready: Ready, refuse: Refuse):
        self.timeout_s = settings.server.handshake_timeout_s or 3600.0
        self.max_total = max(1, settings.limits.pending_handshakes)
        self.max_per_source = max(1, settings.limits.pending_per_source)
        self.max_per_trusted_source = max(self.max_per_source, settings.limits.pending_per_trusted_source)
        self.trusted = parse_networks(settings.limits.trusted_networks)
        self.tls_context = tls_context
        self.selector = selector
        self.ready = ready
        self.refuse = refuse
        self._pending: OrderedDict[int, Pending] = OrderedDict()  # oldest first
        self._per_source: dict[str, int] = {}
        self.dropped_oldest = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, raw: socket.socket, address: Any) -> None:
        """Take a freshly accepted socket; make room by dropping the oldest pending ones if needed."""
        raw.setblocking(False)
        heard = _has_bytes(raw)  # a client's first flight already in: not one of the silent ones
        sock: socket.socket = raw
        if self.tls_context is not None:
            sock = self.tls_context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        pending = Pending(sock, address, time.monotonic(), tls_done=self.tls_context is None, heard=heard)
        pending.trusted = self._is_trusted(pending.source)
        if self._per_source.get(pending.source, 0) >= self._cap(pending.trusted):
            self._trim(pending.source, pending.trusted, excess=1, now=pending.started)
        if len(self._pending) >= self.max_total:
            self._drop(self._first_to_drop(), RefusalReason.crowded,
                       f"oldest pending handshake dropped (limits.pending_handshakes={self.max_total})")
        self._pending[id(pending)] = pending
        self._per_source[pending.source] = self._per_source.get(pending.source, 0) + 1
        self.selector.register(sock, selectors.EVENT_READ, pending)
        self.progress(pending, heard=False)

    def _cap(self, trusted: bool) -> int:
        return self.max_per_trusted_source if trusted else self.max_per_source

    def _trim(self, source: str, trusted: bool, excess: int, now: float) -> None:
        """Drop up to ``excess`` of ``source``'s pending sockets past their grace: silent ones, oldest first."""
        older = [p for p in self._pending.values() if p.source == source and p.started < now - GRACE_S]
        for p in older:
            p.heard = p.heard or _has_bytes(p.sock)  # bytes the selector has not reported yet count too
        stale = [p for p in older if not p.heard or p.started < now - HEARD_GRACE_S]
        name = "pending_per_trusted_source" if trusted else "pending_per_source"
        for p in sorted(stale, key=lambda p: (p.heard, p.started))[:excess]:
            self._drop(p, RefusalReason.crowded,
                       f"oldest pending handshake from {source} dropped (limits.{name}={self._cap(trusted)})")

    def _is_trusted(self, source: str) -> bool:
        if not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(source.split("%")[0])
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def _first_to_drop(self) -> Pending:
        """Untrusted before trusted, silent before heard, oldest first."""
        return min(self._pending.values(), key=lambda p: (p.trusted, p.heard, p.started))

    def progress(self, pending: Pending, heard: bool = True) -> None:
        """Advance one pending socket as far as it goes without blocking (``heard``: it had an event)."""
        pending.heard = pending.heard or heard
        try:
            if not pending.tls_done:
                try:
                    pending.sock.do_handshake()  # type: ignore[attr-defined]
                except ssl.SSLWantReadError:
                    self.selector.modify(pending.sock, selectors.EVENT_READ, pending)
                    return
                except ssl.SSLWantWriteError:
                    self.selector.modify(pending.sock, selectors.EVENT_WRITE, pending)
                    return
                pending.tls_done = True
                self.selector.modify(pending.sock, selectors.EVENT_READ, pending)
            if self._read(pending):
                self._hand_over(pending)
        except (ssl.SSLError, OSError, ValueError) as exc:
            reason = RefusalReason.tls if not pending.tls_done else RefusalReason.protocol
            self._drop(pending, reason, str(exc) or type(exc).__name__)
        except _BadFrame as exc:
            self._drop(pending, RefusalReason.protocol, str(exc))

    def _read(self, pending: Pending) -> bool:
        """Read what is there; True once a whole connect frame is in."""
        closed = False
        while True:
            try:
                chunk = pending.sock.recv(16384)
            except (ssl.SSLWantReadError, BlockingIOError):
                break
            except ssl.SSLWantWriteError:
                self.selector.modify(pending.sock, selectors.EVENT_WRITE, pending)
                break
            if not chunk:
                closed = True  # the client may half-close right after its connect frame
                break
            pending.data += chunk
            if len(pending.data) > HANDSHAKE_MAX_BYTES + PYRO_HEADER.size:
                raise _BadFrame(f"handshake larger than {HANDSHAKE_MAX_BYTES} bytes")
        complete = self._complete(pending.data)
        if closed and not complete:
            raise _BadFrame("closed before a whole Pyro5 handshake arrived")
        return complete

    @staticmethod
    def _complete(data: bytearray) -> bool:
        """Whether ``data`` holds a whole connect frame; raise _BadFrame as soon as it cannot be one."""
        if len(data) < PYRO_HEADER.size:
            return False
        tag, version, msg_type, _, _, _, data_size, ann_size, _, _, magic = PYRO_HEADER.unpack_from(data)
        if tag != b"PYRO" or version != protocol.PROTOCOL_VERSION or magic != MAGIC_NUMBER:
            raise _BadFrame("not a Pyro5 handshake (bad tag, version or magic)")
        if msg_type != protocol.MSG_CONNECT:
            raise _BadFrame(f"expected a Pyro5 connect message, got type {msg_type}")
        if data_size + ann_size > HANDSHAKE_MAX_BYTES:
            raise _BadFrame(f"handshake larger than {HANDSHAKE_MAX_BYTES} bytes")
        return len(data) >= PYRO_HEADER.size + data_size + ann_size

    def _forget(self, pending: Pending) -> None:
        if self._pending.pop(id(pending), None) is None:
            return
        left = self._per_source.get(pending.source, 0) - 1
        if left > 0:
            self._per_source[pending.source] = left
        else:
            self._per_source.pop(pending.source, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(pending.sock)

    def _hand_over(self, pending: Pending) -> None:
        self._forget(pending)
        pending.sock.setblocking(True)
        pending.sock.settimeout(self.timeout_s)  # the worker's part: checking the token, sending the reply
        self.ready(pending.sock, pending.address, bytes(pending.data))

    def _drop(self, pending: Pending, reason: RefusalReason, detail: str) -> None:
        self._forget(pending)
        if reason is RefusalReason.crowded:
            self.dropped_oldest += 1
        self.refuse(reason, pending.address, detail)
        with contextlib.suppress(OSError):
            pending.sock.close()

    def expire(self) -> None:
        """Drop pending sockets past the handshake timeout, and each source's excess once past its grace."""
        now = time.monotonic()
        for source, count in list(self._per_source.items()):
            trusted = self._is_trusted(source)
            if count > self._cap(trusted):
                self._trim(source, trusted, count - self._cap(trusted), now)
        limit = now - self.timeout_s
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if oldest.started > limit:
                return
            self._drop(oldest, RefusalReason.handshake_timeout,
                       f"no complete handshake within server.handshake_timeout_s={self.timeout_s:g}")

    def close(self) -> None:
        for pending in list(self._pending.values()):
            self._forget(pending)
            with contextlib.suppress(OSError):
                pending.sock.close()


def parse_networks(entries: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """``limits.trusted_networks`` as networks, naming a bad entry."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"limits.trusted_networks: {entry!r} is not a network (like 10.13.13.0/24)") from None
    return networks


def _has_bytes(sock: socket.socket) -> bool:
    """Whether bytes wait in the kernel (a peek on the descriptor, under TLS too; they stay for the reader)."""
    try:
        return bool(socket.socket.recv(sock, 1, socket.MSG_PEEK))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True  # reset already: progress() drops it with the error


class ReceiveBudget:
    """Bytes of request frames being received, per connection and for the whole server (Redis's client buffers).

    Each connection could otherwise hold a ``max_message_bytes`` partial frame (256 MiB), 32
    connections per user. A frame over either limit drops its connection, naming the limit.
    """

    def __init__(self, per_connection: int, total: int):
        self.per_connection = per_connection
        self.total = total
        self._lock = threading.Lock()
        self.in_use = 0

    def reserve(self, size: int) -> None:
        if self.per_connection and size > self.per_connection:
            raise errors.ProtocolError(f"request of {size} bytes is over limits.receive_bytes_per_connection="
                                       f"{self.per_connection}")
        with self._lock:
            if self.total and self.in_use + size > self.total:
                raise errors.ProtocolError(f"request of {size} bytes refused: requests being received hold "
                                           f"{self.in_use} of limits.receive_bytes_total={self.total}")
            self.in_use += size

    def release(self, size: int) -> None:
        with self._lock:
            self.in_use -= size


class _BadFrame(Exception):
    """The bytes received are not (the start of) a Pyro5 connect frame we accept."""
