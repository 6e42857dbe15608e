"""Accepting connections: TLS in the worker thread, a handshake deadline, idle timeouts, safe binds.

Pyro5's thread-pool server does the TLS handshake inside ``accept()`` on its
one accepting thread, so one slow client would stall every new connection.
:class:`HubSocketServer` accepts plain TCP, hands the socket to a worker, and
the worker does TLS and the Pyro5 handshake under one deadline
(``server.handshake_timeout_s``), enforced by a watchdog that shuts the socket
down. After the handshake the socket gets the idle timeout. Refusals are
counted in the hub's statistics by reason.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from Pyro5 import errors, protocol
from Pyro5.svr_threads import ClientConnectionJob, NoFreeWorkersError, SocketServer_Threadpool

from ..config import ConfigError, Settings
from ..errors import RefusalReason
from ..wire.transport import FastConnection

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


HANDSHAKE_MAX_BYTES = 64 * 1024


class GuardedConnection(FastConnection):
    """A Pyro5 connection that bounds the handshake's size and refuses compressed messages.

    Pyro5 inflates compressed payloads without a size limit, so one small frame could
    expand to gigabytes; taggerhub's and the vendor's clients never compress.
    """

    def __init__(self, sock: socket.socket):
        super().__init__(sock)
        self.handshake_budget: int | None = HANDSHAKE_MAX_BYTES
        self.handshake_decided = False  # set by the daemon once the hub admitted or refused the client
        self._header_next = False

    def recv(self, size: int) -> bytes:
        if self.handshake_budget is not None:
            if size > self.handshake_budget:
                raise errors.ProtocolError(f"handshake larger than {HANDSHAKE_MAX_BYTES} bytes")
            self.handshake_budget -= size
        data = super().recv(size)
        if size == 6:
            self._header_next = True
        elif self._header_next:
            self._header_next = False
            # The rest of a 40-byte header: its flags are bytes 8..10 of the whole header.
            if size == 34 and int.from_bytes(data[2:4], "big") & protocol.FLAGS_COMPRESSED:
                raise errors.ProtocolError("compressed Pyro5 messages are not accepted")
        return data


class Watchdog(threading.Thread):
    """Calls a job's ``expire()`` when its handshake outlives its deadline."""

    def __init__(self) -> None:
        super().__init__(name="taggerhub-handshake-watchdog", daemon=True)
        self._lock = threading.Lock()
        self._deadlines: dict[int, tuple[float, HubConnectionJob]] = {}
        self.stop = threading.Event()

    def watch(self, job: HubConnectionJob, timeout_s: float) -> None:
        with self._lock:
            self._deadlines[id(job)] = (time.monotonic() + timeout_s, job)

    def done(self, job: HubConnectionJob) -> None:
        with self._lock:
            self._deadlines.pop(id(job), None)

    def run(self) -> None:
        while not self.stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                expired = [job for deadline, job in self._deadlines.values() if deadline <= now]
                for job in expired:
                    del self._deadlines[id(job)]
            for job in expired:
                job.expire()


class HubConnectionJob(ClientConnectionJob):
    """One client connection on a worker thread: TLS, handshake under a deadline, then requests."""

    def __init__(self, sock: socket.socket, address: Any, daemon: Any, server: HubSocketServer):
        self.raw = sock
        self.current: socket.socket = sock  # the socket object that owns the descriptor right now
        self.caddr = address
        self.daemon = daemon
        self.server = server
        self.csock = None  # type: ignore[assignment]
        self.expired = False
        self.started = time.monotonic()
        self._state_lock = threading.Lock()
        self._handshaking = True

    def _refuse(self, reason: RefusalReason, detail: str) -> None:
        self.server.refused(reason, self.caddr, detail)

    def expire(self) -> None:
        """Deadline passed: shut the socket down under the worker's feet (it then fails and cleans up)."""
        with self._state_lock:
            if not self._handshaking:
                return
            self.expired = True
            with contextlib.suppress(OSError):  # the plain socket call: SSLSocket.shutdown would unwrap
                socket.socket.shutdown(self.current, socket.SHUT_RDWR)

    def _handshake_over(self) -> None:
        with self._state_lock:
            self._handshaking = False
        self.server.watchdog.done(self)

    def _timed_out(self) -> bool:
        limit = self.server.settings.server.handshake_timeout_s
        return self.expired or (limit > 0 and time.monotonic() - self.started >= limit * 0.95)

    def __call__(self) -> None:
        settings = self.server.settings
        self.started = time.monotonic()
        self.raw.settimeout(settings.server.handshake_timeout_s or None)
        self.server.watchdog.watch(self, settings.server.handshake_timeout_s or 3600.0)
        sock: socket.socket = self.raw
        if self.server.tls_context is not None:
            try:
                with self._state_lock:
                    sock = self.current = self.server.tls_context.wrap_socket(
                        self.raw, server_side=True, do_handshake_on_connect=False)
                sock.do_handshake()
            except (ssl.SSLError, OSError, ValueError) as exc:
                self._handshake_over()
                self._refuse(RefusalReason.handshake_timeout if self._timed_out() else RefusalReason.tls, str(exc))
                with contextlib.suppress(OSError):
                    self.current.close()
                return
        self.csock = GuardedConnection(sock)
        if not self.handleConnection():
            return
        try:
            self._serve()
        finally:
            try:
                self.daemon._clientDisconnect(self.csock)
            except Exception as exc:  # never let cleanup kill the worker
                log.warning("error in client disconnect", extra={"error": str(exc)})
            self.csock.close()

    def _serve(self) -> None:
        """Handle requests until the client leaves; a broken frame or a long silence drops it with one line."""
        client = self.server.address_text(self.caddr)
        while True:
            try:
                self.daemon.handleRequest(self.csock)
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
        self._handshake_over()
        if ok:
            self.csock.handshake_budget = None
            idle = self.server.settings.server.idle_timeout_s
            with contextlib.suppress(OSError):
                self.csock.sock.settimeout(idle or None)
            return True
        if not self.csock.handshake_decided:
            self._refuse(RefusalReason.handshake_timeout if self._timed_out() else RefusalReason.protocol,
                         "bad or missing Pyro5 handshake")
        # A session may have been opened before Pyro5 failed the handshake (e.g. unknown object): close it.
        with contextlib.suppress(Exception):
            self.daemon.clientDisconnect(self.csock)
        return False


class HubSocketServer(SocketServer_Threadpool):
    """Pyro5's thread-pool server, accepting plain TCP and leaving TLS to the workers."""

    settings: Settings
    tls_context: ssl.SSLContext | None
    watchdog: Watchdog
    on_refused: Callable[[str, str, str], None]

    def adopt(self, settings: Settings, tls_context: ssl.SSLContext | None,
              on_refused: Callable[[str, str, str], None]) -> None:
        self.settings = settings
        self.tls_context = tls_context
        self.on_refused = on_refused
        self.watchdog = Watchdog()
        self.watchdog.start()
        self.sock.settimeout(None)

    @staticmethod
    def address_text(address: Any) -> str:
        return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)

    def refused(self, reason: RefusalReason, address: Any, detail: str) -> None:
        self.on_refused(reason, self.address_text(address), detail)

    def events(self, eventsockets: Any) -> None:
        """Accept one connection and hand it to a worker; never block on the client here, never die."""
        with contextlib.suppress(TimeoutError, BlockingIOError):
            if not self._selector.select(0.5):
                return
            try:
                csock, caddr = self.sock.accept()
            except OSError as exc:  # out of descriptors or memory in the kernel: keep the loop alive
                self._failed_once("accept", exc)
                time.sleep(0.05)
                return
            if self.shutting_down:
                csock.close()
                return
            try:
                self.pool.process(HubConnectionJob(csock, caddr, self.daemon, self))
            except NoFreeWorkersError:
                self.refused(RefusalReason.busy, caddr, "no free worker (server.max_connections reached)")
                csock.close()
            except (RuntimeError, MemoryError) as exc:  # a worker thread could not be started
                self._failed_once("start a worker", exc)
                self.refused(RefusalReason.busy, caddr, f"no worker could be started: {exc}")
                csock.close()

    def _failed_once(self, what: str, exc: BaseException) -> None:
        """Log the first failure of each kind; later ones are only counted (refusals by reason)."""
        failures = self.__dict__.setdefault("_failures", {})
        failures[what] = failures.get(what, 0) + 1
        if failures[what] == 1:
            log.error(f"could not {what}; the server keeps serving, later failures are only counted",
                      extra={"error": f"{type(exc).__name__}: {exc}"})

    def close(self) -> None:
        if getattr(self, "watchdog", None) is not None:
            self.watchdog.stop.set()
        super().close()
