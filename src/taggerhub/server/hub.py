"""The hub wires the server's parts together and opens and closes sessions with connections.

Parts, each in its own module: :class:`~.sessions.SessionRegistry` (who is
connected), :class:`~.devices.DeviceRegistry` (open taggers, shared),
:class:`~.objects.ObjectTable` (served objects and their lifetimes),
:class:`~.callpath.CallPath` (the door every remote call passes through) and
:class:`~.library.LibraryCalls` (the server's own calls). The daemon
(:mod:`.daemon`) calls :meth:`Hub.open_session` and :meth:`Hub.close_session`.
"""

from __future__ import annotations

import contextlib
import logging
from types import ModuleType
from typing import Any

import Pyro5.errors
import Pyro5.server

from .. import __version__
from ..access.policy import Access, Admission, HandshakeRefused
from ..backend.adapter import Adapter, BackendApi
from ..backend.kinds import ObjectKind
from ..config import Settings
from ..experiments import registry as experiment_registry
from ..wire.addresses import peer_address, peer_text
from .callpath import CallPath
from .devices import DeviceRegistry
from .library import LibraryCalls
from .objects import ObjectTable
from .recordings import RecordingCalls
from .sessions import Session, SessionRegistry
from .stats import RpcStats

log = logging.getLogger("taggerhub.server")


class Hub:
    """Serves one backend module: builds the parts and ties their lifetimes to connections."""

    def __init__(self, backend: ModuleType, settings: Settings, backend_name: str = "simulator"):
        self.settings = settings
        self.backend = backend
        self.backend_name = backend_name
        self.api = BackendApi(backend)
        self.stats = RpcStats()
        self.access = Access(settings.auth, settings.limits)
        self.daemon: Pyro5.server.Daemon | None = None
        self.sessions = SessionRegistry()
        self.devices = DeviceRegistry(backend)
        self.table = ObjectTable(self._register, self._unregister, self._release_backend)
        self.calls = CallPath(self.api, self.access, self.sessions, self.table, self.stats)
        self.library_calls = LibraryCalls(backend, backend_name, self.calls, self.devices,
                                          experiment_registry.load_catalog(settings.experiments), self.stats)
        self.library_calls.recordings = RecordingCalls(backend, self.calls, settings.server.recordings_dir)
        self.calls.server_calls = self.library_calls.handlers()
        library_class = self.api.library_adapter_class(extra=self.library_calls.remote_signatures())
        self.library = library_class(None, self.calls, ObjectKind.library)

    # -- daemon plumbing ------------------------------------------------------------
    def _register(self, adapter: Adapter) -> str:
        assert self.daemon is not None
        return self.daemon.register(adapter).object

    def _unregister(self, adapter: Adapter) -> None:
        if self.daemon is not None:
            with contextlib.suppress(Pyro5.errors.DaemonError):  # already gone
                self.daemon.unregister(adapter)

    def _release_backend(self, adapter: Adapter) -> None:
        self.access.quotas.release(id(adapter))
        if adapter._kind == ObjectKind.experiment and adapter._obj is not None:
            adapter._obj.taggerhub_close()  # stop and detach the measurements the plugin made
            return
        self.devices.release(adapter)

    # -- sessions -------------------------------------------------------------------
    def open_session(self, conn: Any, handshake: Any) -> dict[str, Any]:
        """Accept a connection (auth hooks in here); return the handshake response."""
        address = peer_text(peer_address(conn))
        client_id = str(handshake.get("client", "")) if isinstance(handshake, dict) else ""
        self.stats.record_connection()
        admission = self._admit(conn, handshake, address)
        user, role = admission.user, admission.role
        client_id = f"{user}/{client_id}" if client_id else ""  # one process may connect as several users
        session = self.sessions.open(conn, address, client_id, user, role, admission.credential)
        conn.taggerhub_session = session
        self.access.bind_session(session.id, user)
        self.access.audit.write("connect", user=user, role=role, address=address, session=session.id)
        log.info("client connected", extra={
            "client": address, "session": session.id, "user": session.user, "connections": session.connections,
        })
        return {"server": "taggerhub", "version": __version__, "session": session.id}

    def _admit(self, conn: Any, handshake: Any, address: str) -> Admission:
        """Who this connection is; refuse (counted, audited, logged) before any object is reachable."""
        try:
            return self.access.admit(handshake, address, _peer_cert(conn), getattr(conn, "admins_only", False))
        except HandshakeRefused as exc:
            self.stats.record_refused(exc.reason)
            self.access.audit.write("refused", address=address, reason=exc.reason, error=str(exc))
            log.warning("handshake refused", extra={"client": address, "reason": exc.reason, "error": str(exc)})
            raise

    def refused_connection(self, reason: str, address: str, detail: str) -> None:
        """A connection the listener dropped before the handshake (TLS, timeout, garbage, busy)."""
        self.stats.record_refused(reason)
        self.access.audit.write("refused", address=address, reason=reason, error=detail[:300])
        log.warning("connection refused", extra={"client": address, "reason": reason, "error": detail[:300]})

    def close_session(self, conn: Any) -> None:
        closed = self.sessions.close(conn)
        if closed is None:
            return
        session, last = closed
        self.access.connection_closed(session.user)
        if last:
            self._end(session)

    def _end(self, session: Session) -> None:
        """The session's last connection closed: end its lease and free what only it used."""
        self.access.session_closed(session.id)
        self.access.audit.write("disconnect", user=session.user, address=session.address, session=session.id,
                                calls=session.calls)
        self.library_calls.stream.drop_session(session)
        freed = self.table.drop_session(session)
        log.info("client disconnected", extra={
            "client": session.address, "session": session.id, "calls": session.calls, "objects_freed": freed,
        })

    def free_everything(self) -> int:
        self.library_calls.stream.close_all()  # before the devices go: each stream's end is audited
        self.library_calls.recordings.close()
        return self.table.free_all()


def _peer_cert(conn: Any) -> dict | None:
    getpeercert = getattr(getattr(conn, "sock", None), "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        return getpeercert() or None
    except (OSError, ValueError):
        return None

