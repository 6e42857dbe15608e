"""Accepting connections: admission without a thread per pending socket, idle timeouts, safe binds.

Pyro5's thread-pool server does the TLS handshake inside ``accept()`` on its
one accepting thread, and taggerhub once did it on a worker per socket; both let
silent clients stall or exhaust the server. :class:`HubSocketServer` accepts
plain TCP and leaves each socket to the :class:`~.admission.HandshakeStage`
(non-blocking TLS and connect frame in the accepting thread's selector); a
worker is started only for a complete handshake. After the handshake the socket
gets the idle timeout. Refusals are counted in the hub's statistics by reason.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from Pyro5 import errors, protocol

from ..config import ConfigError, Settings
from ..errors import RefusalReason
from ..wire import pyro_compat
from ..wire.addresses import peer_text
from ..wire.connection import FastConnection
from .admission import HANDSHAKE_MAX_BYTES, HandshakeStage, ReceiveBudget

LARGE_FRAME_BYTES = 64 * 1024  # frames at least this big are received into their own buffer: booked

log = logging.getLogger("taggerhub.listener")

def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address."""
    if host in ("", "0.0.0.0", "::"):
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_exposure(settings: Settings) -> None:
    """Refuse to listen beyond loopback without auth and TLS, unless ``server.insecure``; warn if insecure."""
    host = settings.server.host
    if is_loopback(host) or (settings.auth.enabled and settings.tls.enabled):
        return
    missing = " and ".join(n for n, on in (("auth", settings.auth.enabled), ("TLS", settings.tls.enabled)) if not on)
    if not settings.server.insecure:
        raise ConfigError(f"refusing to listen on {host!r} (beyond loopback) without {missing}; "
                          "enable [auth] and [tls] (see docs/security.md) or pass --insecure")
    log.warning("INSECURE: listening beyond loopback without " + missing, extra={"host": host})


class CannotListen(ConfigError):
    """The configured address cannot be bound: taken, not on this machine, or privileged."""


_BIND_HINTS = {
    errno.EADDRINUSE: "the port is already in use (another taggerhub serve, or another program); stop it, "
                      "or choose a free port with --port or [server] port",
    errno.EADDRNOTAVAIL: "that address is not one of this machine's; choose one it has with --host or [server] host",
    errno.EACCES: "ports below 1024 need privileges; choose a port of 1024 or above with --port or [server] port",
}


def cannot_listen(host: str, port: int, exc: OSError) -> CannotListen:
    """One line for an operator: which address could not be bound, why, and what to do."""
    hint = _BIND_HINTS.get(exc.errno or 0, exc.strerror or str(exc))
    return CannotListen(f"cannot listen on {host}:{port}: {hint}")


class GuardedConnection(FastConnection):
    """A Pyro5 connection that bounds the handshake's size and refuses compressed messages.

    Pyro5 inflates compressed payloads without a size limit, so one small frame could
    expand to gigabytes; taggerhub's and the vendor's clients never compress.
    """

    def __init__(self, sock: socket.socket, budget: ReceiveBudget | None = None):
        super().__init__(sock)
        self.handshake_budget: int | None = HANDSHAKE_MAX_BYTES
        self.handshake_decided = False  # set by the daemon once the hub admitted or refused the client
        self.admins_only = False  # it got one of the workers kept for admins (limits.admin_connections)
        self._header_next = False
        self.budget = budget
        self.reserved = 0  # bytes of large request frames booked against the budget until the request is done

    def release_buffers(self) -> None:
        if self.reserved and self.budget is not None:
            self.budget.release(self.reserved)
        self.reserved = 0

    def recv(self, size: int) -> bytes:
        if size >= LARGE_FRAME_BYTES and self.budget is not None:
            self.budget.reserve(size)
            self.reserved += size
        if self.handshake_budget is not None:
            if size > self.handshake_budget:
                raise errors.ProtocolError(f"handshake larger than {HANDSHAKE_MAX_BYTES} bytes")
            self.handshake_budget -= size
        data = super().recv(size)
        if size == pyro_compat.HEADER_FIRST_READ:
            self._header_next = True
        elif self._header_next:
            self._header_next = False
            # The rest of a 40-byte header, which holds the flags (pyro_compat: how Pyro5 reads a header).
            if (size == pyro_compat.HEADER_REST_READ
                    and pyro_compat.flags_in_header_rest(data) & protocol.FLAGS_COMPRESSED):
                raise errors.ProtocolError("compressed Pyro5 messages are not accepted")
        return data


class HubConnectionJob(pyro_compat.ConnectionJob):
    """One admitted connection on a worker thread: its TLS and connect frame are already done and read."""

    def __init__(self, sock: socket.socket, address: Any, daemon: Any, server: HubSocketServer, prefix: bytes):
        self.caddr = address
        self.daemon = daemon
        self.server = server
        self.csock = GuardedConnection(sock, server.receive_budget)
        self.csock.unread(prefix)

    def __call__(self) -> None:
        if not self.handleConnection():
            return
        try:
            self._serve()
        finally:
            try:
                pyro_compat.client_disconnect(self.daemon, self.csock)
            except Exception as exc:  # never let cleanup kill the worker
                log.warning("error in client disconnect", extra={"error": str(exc)})
            self.csock.release_buffers()
            self.csock.close()

    def _serve(self) -> None:
        """Handle requests until the client leaves; a broken frame or a long silence drops it with one line."""
        client = peer_text(self.caddr)
        while True:
            try:
                self.daemon.handleRequest(self.csock)
                self.csock.release_buffers()
            except (OSError, errors.ConnectionClosedError, errors.SecurityError):
                return
            except errors.TimeoutError:
                log.info("idle connection dropped", extra={
                    "client": client, "idle_timeout_s": self.server.settings.server.idle_timeout_s})
                return
            except errors.ProtocolError as exc:
                log.warning("connection dropped: bad frame", extra={"client": client, "error": str(exc)})
                return
            except Exception:
                log.warning("connection dropped: error while handling a request", extra={"client": client},
                            exc_info=True)
                return

    def handleConnection(self) -> bool:
        ok = super().handleConnection()
        if ok:
            self.csock.handshake_budget = None
            idle = self.server.settings.server.idle_timeout_s
            with contextlib.suppress(OSError):
                self.csock.sock.settimeout(idle or None)
            return True
        if not self.csock.handshake_decided:
            self.server.refused(RefusalReason.protocol, self.caddr, "bad or missing Pyro5 handshake")
        # A session may have been opened before Pyro5 failed the handshake (e.g. unknown object): close it.
        with contextlib.suppress(Exception):
            self.daemon.clientDisconnect(self.csock)
        return False


class HubSocketServer(pyro_compat.ThreadPoolServer):
    """Pyro5's thread-pool server; connections get a worker only once their handshake has arrived."""

    settings: Settings
    on_refused: Callable[[str, str, str], None]
    on_counted: Callable[[str], None]
    stage: HandshakeStage
    receive_budget: ReceiveBudget

    def adopt(self, settings: Settings, tls_context: ssl.SSLContext | None,
              on_refused: Callable[[str, str, str], None], on_counted: Callable[[str], None]) -> None:
        self.settings = settings
        self.on_refused = on_refused
        self.on_counted = on_counted
        self._quiet_until = 0.0
        self._quieted = 0
        self.receive_budget = ReceiveBudget(settings.limits.receive_bytes_per_connection,
                                            settings.limits.receive_bytes_total)
        self.stage = HandshakeStage(settings, tls_context, pyro_compat.server_selector(self), self._start_worker,
                                    self.refused)
        self.sock.setblocking(False)

    def refused(self, reason: RefusalReason, address: Any, detail: str) -> None:
        """Count, log and audit a refusal; floods of dropped pending handshakes are logged once per 10 s."""
        if reason is RefusalReason.crowded:
            now = time.monotonic()
            if now < self._quiet_until:
                self._quieted += 1
                self.on_counted(reason)
                return
            self._quiet_until = now + 10.0
            if self._quieted:
                detail += f" ({self._quieted} more dropped in the last 10 s, counted only)"
                self._quieted = 0
        self.on_refused(reason, peer_text(address), detail)

    def events(self, eventsockets: Any) -> None:
        """Accept connections and advance pending handshakes; never block on a client here, never die."""
        for key, _mask in pyro_compat.server_selector(self).select(0.2):
            if key.fileobj is self.sock:
                self._accept()
            else:
                self.stage.progress(key.data)
        self.stage.expire()

    def _accept(self) -> None:
        for _ in range(64):  # a burst per wake-up; the rest wait in the listen backlog
            try:
                csock, caddr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors or memory in the kernel: keep the loop alive
                self._failed_once("accept", exc)
                time.sleep(0.05)
                return
            if self.shutting_down:
                csock.close()
                return
            try:
                self.stage.add(csock, caddr)
            except (OSError, ValueError, MemoryError) as exc:
                self._failed_once("admit a connection", exc)
                with contextlib.suppress(OSError):
                    csock.close()

    def _start_worker(self, sock: socket.socket, address: Any, prefix: bytes) -> None:
        """A connection whose connect frame is in: hand it to a worker, or refuse it."""
        try:
            job = HubConnectionJob(sock, address, self.daemon, self, prefix)
            # The last limits.admin_connections workers take admins only (the hub refuses anyone else).
            reserve = self.settings.limits.admin_connections
            job.csock.admins_only = bool(reserve) and (
                len(getattr(self.pool, "busy", ())) >= self.settings.server.max_connections - reserve)
            self.pool.process(job)
            return
        except pyro_compat.NoFreeWorkersError:
            self.refused(RefusalReason.busy, address, "no free worker (server.max_connections reached)")
        except (RuntimeError, MemoryError) as exc:  # a worker thread could not be started
            self._failed_once("start a worker", exc)
            self.refused(RefusalReason.busy, address, f"no worker could be started: {exc}")
        with contextlib.suppress(OSError):
            sock.close()

    def _failed_once(self, what: str, exc: BaseException) -> None:
        """Log the first failure of each kind; later ones are only counted (refusals by reason)."""
        failures = self.__dict__.setdefault("_failures", {})
        failures[what] = failures.get(what, 0) + 1
        if failures[what] == 1:
            log.error(f"could not {what}; the server keeps serving, later failures are only counted",
                      extra={"error": f"{type(exc).__name__}: {exc}"})

    def close(self) -> None:
        if getattr(self, "stage", None) is not None:
            self.stage.close()
        super().close()
