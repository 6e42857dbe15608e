"""The taggerhub server: a Pyro5 daemon serving the backend to many clients at once.

:class:`Hub` is the one door every remote call passes through (the adapter's
:class:`~taggerhub.backend.adapter.CallGate`): it finds the caller's session, resolves
proxies passed as arguments, shares an open device between clients, records
who uses which object, wraps results, keeps RPC statistics and logs. The
:class:`HubDaemon` ties sessions to connections; :func:`serve` runs it until
SIGTERM or SIGINT, then frees the device.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any

import Pyro5.api
import Pyro5.errors
import Pyro5.server
from Pyro5 import config as pyro_config
from Pyro5 import protocol, serializers
from Pyro5.callcontext import current_context

from .. import __version__
from ..access import tls
from ..access.policy import Access, Admission, HandshakeRefused, ObjectRef
from ..access.rules import STATE_CHANGING, Level, level_of
from ..backend.adapter import Adapter, BackendApi
from ..config import Settings
from ..errors import AccessDenied, ObjectGone
from ..experiments import registry as experiment_registry
from ..experiments import serving as experiment_serving
from ..wire import transport
from . import listener
from .sessions import ObjectTable, Session
from .stats import RpcStats

log = logging.getLogger("taggerhub.server")
FAST_SERIALIZER_IDS = frozenset({transport.TAGGERHUB_SERIALIZER_ID, 4, 1})  # taggerhub, msgpack, serpent
ArgCall = tuple[str, str, bool]  # (kind of the called object, method, is a constructor): for argument checks
SERIALIZER_NAMES = {1: "serpent", 2: "json", 3: "marshal", 4: "msgpack", transport.TAGGERHUB_SERIALIZER_ID: "taggerhub"}


class Hub:
    """Serves one backend module: sessions, shared devices, object lifetimes, statistics."""

    def __init__(self, backend: ModuleType, settings: Settings, backend_name: str = "simulator"):
        self.settings = settings
        self.backend = backend
        self.backend_name = backend_name
        self.api = BackendApi(backend)
        self.stats = RpcStats()
        self.access = Access(settings)
        self._conns: dict[int, tuple[Any, Session]] = {}  # id(conn) -> (conn, session), to end sessions
        self.daemon: Pyro5.server.Daemon | None = None
        self._sessions: dict[int, Session] = {}  # by id() of the connection
        self._clients: dict[str, Session] = {}  # by client id from the handshake
        self._sessions_lock = threading.Lock()
        self._devices: dict[str, Adapter] = {}
        self._devices_lock = threading.RLock()
        self.table = ObjectTable(self._register, self._unregister, self._release_backend)
        self.experiments = experiment_registry.load_catalog(settings.experiments)
        self.library_class = self.api.library_adapter_class(extra={
            "enum_definitions": self.enum_definitions_doc,
            "hub_status": self.status,
            "hub_metrics": self.metrics,
            "acquireControl": self.acquire_control,
            "releaseControl": self.release_control,
            "hub_sessions": self.list_sessions,
            "hub_end_session": self.end_session,
            "experiment": self.experiment_doc,
            "experiments": self.experiments.describe,
        })
        self.library = self.library_class(None, self, "library")

    # -- daemon plumbing ------------------------------------------------------------
    def _register(self, adapter: Adapter) -> str:
        assert self.daemon is not None
        uri = self.daemon.register(adapter)
        return uri.object

    def _unregister(self, adapter: Adapter) -> None:
        if self.daemon is not None:
            with contextlib.suppress(Pyro5.errors.DaemonError):  # already gone
                self.daemon.unregister(adapter)

    def _release_backend(self, adapter: Adapter) -> None:
        if adapter._kind == "experiment" and adapter._obj is not None:
            adapter._obj.taggerhub_close()  # stop and detach the measurements the plugin made
            return
        with self._devices_lock:
            serial = next((s for s, a in self._devices.items() if a is adapter), None)
            if serial is not None:
                del self._devices[serial]
        if serial is not None and adapter._obj is not None:
            log.info("device freed", extra={"serial": serial})
            self.backend.freeTimeTagger(adapter._obj)

    # -- sessions -------------------------------------------------------------------
    def open_session(self, conn: Any, handshake: Any) -> dict[str, Any]:
        """Accept a connection (auth hooks in here); return the handshake response."""
        address = _address_of(conn)
        client_id = str(handshake.get("client", "")) if isinstance(handshake, dict) else ""
        self.stats.record_connection()
        admission = self._admit(conn, handshake, address)
        user, role = admission.user, admission.role
        client_id = f"{user}/{client_id}" if client_id else ""  # one process may connect as several users
        with self._sessions_lock:
            session = self._clients.get(client_id) if client_id else None
            if session is not None:
                session.connections += 1
                # The process proved the user's current token: its older connections may go on too.
                session.credential = admission.credential
            else:
                session = Session(address=address, client_id=client_id, user=user, role=role,
                                  credential=admission.credential)
                if client_id:
                    self._clients[client_id] = session
            self._sessions[id(conn)] = session
            self._conns[id(conn)] = (conn, session)
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
            return self.access.admit(handshake, address, _peer_cert(conn))
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
        with self._sessions_lock:
            session = self._sessions.pop(id(conn), None)
            self._conns.pop(id(conn), None)
            if session is None:
                return
            self.access.connection_closed(session.user)
            session.connections -= 1
            if session.connections > 0:
                return
            if session.client_id and self._clients.get(session.client_id) is session:
                self._clients.pop(session.client_id, None)
        session.closed = True
        self.access.session_closed(session.id)
        self.access.audit.write("disconnect", user=session.user, address=session.address, session=session.id,
                                calls=session.calls)
        freed = self.table.drop_session(session)
        log.info("client disconnected", extra={
            "client": session.address, "session": session.id, "calls": session.calls, "objects_freed": freed,
        })

    def current_session(self) -> Session:
        conn = current_context.client
        session = getattr(conn, "taggerhub_session", None)
        if session is not None:
            return session
        with self._sessions_lock:
            session = self._sessions.get(id(conn))
        if session is None:  # in-process calls (tests, server-side experiments)
            session = Session(address="local")
            with self._sessions_lock:
                self._sessions[id(conn)] = session
        if not session.serializer:
            session.serializer = SERIALIZER_NAMES.get(current_context.serializer_id or 0, "?")
        return session

    def sessions(self) -> list[Session]:
        with self._sessions_lock:
            return list({id(s): s for s in self._sessions.values()}.values())

    # -- argument and result mapping ----------------------------------------------
    def _adapter_for(self, ref: Any, session: Session, call: ArgCall | None = None) -> Adapter:
        """The served object behind a proxy argument; ``call`` (kind, method, is_constructor) gets it checked."""
        if isinstance(ref, Adapter):
            adapter = ref
        elif isinstance(ref, Pyro5.api.Proxy):
            adapter = self.table.get(ref._pyroUri.object)
        elif isinstance(ref, Pyro5.api.URI):
            adapter = self.table.get(ref.object)
        else:
            raise TypeError(f"expected a proxy of a server object, got {type(ref).__name__}")
        if call is not None and self.access.checks_calls():
            self.access.authorize_argument(session, *call, self._object_ref(adapter))
        self.table.use(adapter, session)
        if adapter._obj is None:
            raise ObjectGone(f"{type(adapter).__name__} object has been freed")
        return adapter

    def _object_ref(self, adapter: Adapter) -> ObjectRef:
        """What the access checks need to know about an object passed as an argument."""
        parent = adapter._parent
        group = self._object_ref(parent) if adapter._kind == "tagger" and parent is not None \
            and parent._kind == "synchronized" else None
        return ObjectRef(adapter._kind, f"{type(adapter).__name__} {getattr(adapter, '_pyroId', '?')}",
                         self.table.owner_of(adapter), group)

    def _resolve(self, value: Any, session: Session, call: ArgCall | None = None) -> Any:
        if isinstance(value, Pyro5.api.Proxy | Pyro5.api.URI | Adapter):
            return self._adapter_for(value, session, call)._obj
        if isinstance(value, list | tuple) and any(isinstance(v, Pyro5.api.Proxy | Pyro5.api.URI) for v in value):
            return type(value)(self._resolve(v, session, call) for v in value)
        return value

    def _resolve_all(self, args: tuple, kwargs: dict, session: Session,
                     call: ArgCall | None = None) -> tuple[tuple, dict]:
        return (
            tuple(self._resolve(a, session, call) for a in args),
            {k: self._resolve(v, session, call) for k, v in kwargs.items()},
        )

    def _wrap(self, result: Any, parent: Adapter | None, session: Session) -> Any:
        if self.api.is_backend_object(result):
            adapter = self.api.wrap(result, self, parent)
            return self.table.add(adapter, session, parent=parent)
        return result

    # -- the gate -------------------------------------------------------------------
    def _timed(self, method: str, session: Session, action: Callable[..., Any],
               audit: tuple[str, str, tuple, dict] | None = None, *action_args: Any) -> Any:
        """Run ``action(*action_args)`` as one client call: counted, timed, logged if it fails, audited."""
        started = time.perf_counter()
        outcome = "error"
        error = ""
        try:
            result = action(*action_args)
            outcome = "ok"
            return result
        except Exception as exc:
            outcome, error, replacement = self._failed(session, method, exc)
            if replacement is not None:
                raise replacement from None
            raise
        finally:
            session.calls += 1
            session.last_call = time.monotonic()
            self.stats.record_call(method, outcome, time.perf_counter() - started)
            if audit is not None and self.access.audit.path:
                self._audit(session, method, audit, outcome, error)

    def _failed(self, session: Session, method: str, exc: Exception) -> tuple[str, str, Exception | None]:
        """Log a failed call: its outcome, error text, and the exception to raise instead, if any.

        Denials become PermissionError for clients that only know built-in exception classes (the vendor's).
        """
        if isinstance(exc, AccessDenied):
            log.info("call denied", extra={
                "client": session.address, "session": session.id, "user": session.user, "method": method,
                "error": str(exc),
            })
            return "denied", str(exc), None if session.client_id else PermissionError(str(exc))
        self._log_failure(session, method, exc)
        return "error", f"{type(exc).__name__}: {exc}", None

    def _audit(self, session: Session, method: str, audit: tuple[str, str, tuple, dict], outcome: str,
               error: str) -> None:
        kind, name, args, kwargs = audit
        is_constructor = kind == "library" and name in self.api.iterator_classes
        if level_of(kind, name, is_constructor)[0] in STATE_CHANGING:
            self.access.record_call(session, method, args, kwargs, outcome, error)

    def authorize(self, session: Session, target: Adapter | None, method: str) -> Level | None:
        """Raise AccessDenied if ``session`` may not call ``method`` on ``target`` (role, owner, lease).

        Return the call's level, or None with auth off (then nothing is checked).
        """
        if not self.access.checks_calls():
            return None
        if target is None:
            is_constructor = method in self.api.iterator_classes or method == "SynchronizedMeasurements"
            return self.access.authorize(session, "library", method, lambda: None, is_constructor)
        return self.access.authorize(session, target._kind, method, lambda: self.table.owner_of(target))

    def call(self, target: Adapter, method: str, args: tuple | None, kwargs: dict) -> Any:
        """A method call (``args``) or property read (``args`` None) on a served object."""
        session = self.current_session()
        return self._timed(f"{type(target).__name__}.{method}", session, self._call_backend,
                           (target._kind, method, args or (), kwargs), session, target, method, args, kwargs)

    def _call_backend(self, session: Session, target: Adapter, method: str, args: tuple | None, kwargs: dict) -> Any:
        self.authorize(session, target, method)
        self.table.use(target, session)
        obj = target._obj
        if obj is None:
            raise ObjectGone(f"{type(target).__name__} object has been freed")
        if args is None:  # a property of the backend object
            result = getattr(obj, method)
        elif args or kwargs:
            call_args, call_kwargs = self._resolve_all(args, kwargs, session, (target._kind, method, False))
            result = getattr(obj, method)(*call_args, **call_kwargs)
        else:
            result = getattr(obj, method)()
        return self._wrap(result, target, session) if self.api.is_backend_object(result) else result

    @staticmethod
    def _log_failure(session: Session, method: str, exc: Exception) -> None:
        log.info("call failed", extra={
            "client": session.address, "session": session.id, "method": method,
            "error": f"{type(exc).__name__}: {exc}",
        })

    def construct(self, library: Adapter, class_name: str, args: tuple, kwargs: dict) -> Any:
        session = self.current_session()

        def action() -> Any:
            self.authorize(session, None, class_name)
            cls = self.api.iterator_classes.get(class_name) or (
                self.api.sync_class if class_name == "SynchronizedMeasurements" else None
            )
            if cls is None:
                raise AttributeError(f"unknown measurement class {class_name!r}")
            call_args = list(args)
            tagger_ref = call_args.pop(0) if call_args else kwargs.pop("tagger", None)
            if not isinstance(tagger_ref, Pyro5.api.Proxy | Pyro5.api.URI):
                raise TypeError(f"{class_name}() needs the tagger proxy as its first argument, "
                                f"got {type(tagger_ref).__name__}")
            tagger = self._adapter_for(tagger_ref, session, ("library", class_name, True))
            if tagger._kind != "tagger":
                raise TypeError(f"{class_name}() needs a tagger as first argument, got a {type(tagger).__name__}")
            rest, call_kwargs = self._resolve_all(tuple(call_args), kwargs, session, ("library", class_name, True))
            obj = cls(tagger._obj, *rest, **call_kwargs)
            adapter = self.api.wrap(obj, self, tagger)
            return self.table.add(adapter, session, parent=tagger)

        return self._timed(f"TimeTaggerRPC.{class_name}", session, action, ("library", class_name, args, kwargs))

    def library_call(self, library: Adapter, name: str, args: tuple, kwargs: dict) -> Any:
        session = self.current_session()

        def action() -> Any:
            self.authorize(session, None, name)
            if name == "createTimeTagger":
                return self.create_tagger(session, args, kwargs)
            if name == "freeTimeTagger":
                return self.free_tagger(session, *args, **kwargs)
            if name == "enum_definitions":
                return self.api.enum_definitions()
            if name == "hub_status":
                return self.status()
            if name == "hub_metrics":
                return self.metrics()
            if name in ACCESS_CALLS:
                return getattr(self, ACCESS_CALLS[name])(*args, **kwargs)
            if name == "experiment":
                return self.create_experiment(session, *args, **kwargs)
            if name == "experiments":
                return self.experiments.describe()
            function = self.api.functions.get(name)
            if function is None:
                raise AttributeError(f"unknown function {name!r}")
            call_args, call_kwargs = self._resolve_all(args, kwargs, session, ("library", name, False))
            return self._wrap(function(*call_args, **call_kwargs), None, session)

        return self._timed(f"TimeTaggerRPC.{name}", session, action, ("library", name, args, kwargs))

    # -- shared devices -------------------------------------------------------------
    def create_tagger(self, session: Session, args: tuple, kwargs: dict) -> Adapter:
        """Open the device, or hand out the already open one: one device, many clients."""
        serial = str(args[0] if args else kwargs.get("serial", "") or "")
        with self._devices_lock:
            adapter = self._devices.get(serial) if serial else next(iter(self._devices.values()), None)
            if adapter is None:
                obj = self.backend.createTimeTagger(*args, **kwargs)
                adapter = self.api.wrap(obj, self)
                self.table.add(adapter, session)
                self._devices[obj.getSerial()] = adapter
                log.info("device opened", extra={
                    "serial": obj.getSerial(), "model": obj.getModel(), "session": session.id,
                })
            else:
                self.table.use(adapter, session)
            return adapter

    def free_tagger(self, session: Session, tagger_ref: Any) -> bool:
        """This client is done with the tagger; the device closes when no client uses it."""
        adapter = self._adapter_for(tagger_ref, session, ("library", "freeTimeTagger", False))
        if adapter._kind != "tagger":
            raise TypeError(f"freeTimeTagger() needs a tagger, got a {type(adapter).__name__}")
        if self.access.enabled and session.role == "admin":
            freed = self.table.release(adapter, session, force=True)
            log.warning("device freed for everyone by an admin", extra={
                "user": session.user, "session": session.id, "objects_freed": freed,
            })
            return True
        self.table.release(adapter, session)
        return True

    # -- server-side experiments (plugins) ------------------------------------------
    def experiment_doc(self, name: str, tagger: Any, **params: Any) -> Any:
        """Create server-side experiment ``name`` on ``tagger`` with ``params``; see experiments() for names.

        It belongs to its creator like a measurement: get*/is*/wait* methods are for everyone, the rest
        for its creator and admins. It is freed with the tagger or when no client uses it any more.
        """
        raise NotImplementedError  # documents the remote call; library_call serves it

    def create_experiment(self, session: Session, name: str, tagger: Any, **params: Any) -> Adapter:
        cls = self.experiments.get(str(name))
        device = self._adapter_for(tagger, session, ("library", "experiment", False))
        if device._kind != "tagger":
            raise TypeError(f"experiment() needs a tagger as second argument, got a {type(device).__name__}")
        try:
            instance = cls(self.backend, device._obj, **params)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"experiment {name!r}: {exc}") from None
        guard = experiment_serving.ExperimentGuard(str(name), instance)
        adapter = experiment_serving.adapter_class(cls)(guard, self, "experiment", device)
        return self.table.add(adapter, session, parent=device)

    # -- control lease and sessions (access management) ------------------------------
    def acquire_control(self, timeout_s: float = 60.0) -> float:
        """Take the exclusive control lease for ``timeout_s`` seconds: others cannot change device settings.

        Calling it again renews it. It ends on releaseControl(), at its end time, or when you disconnect.
        """
        session = self.current_session()
        granted = self.access.lease.acquire(session.id, session.user, session.address, timeout_s)
        log.info("control lease taken", extra={"user": session.user, "session": session.id, "seconds": granted})
        return granted

    def release_control(self) -> bool:
        """Give the control lease back (admins may end anyone's); return whether one was held."""
        session = self.current_session()
        return self.access.lease.release(session.id, force=self.access.enabled and session.role == "admin")

    def list_sessions(self) -> list[dict[str, Any]]:
        """List connected clients: user, role, address, since, calls, objects owned, lease (admin)."""
        session = self.current_session()
        holder = self.access.lease.holder()
        rows = []
        for s in self.sessions():
            row = s.describe(self.table.owned_count(s))
            row["lease"] = holder is not None and holder.session_id == s.id
            row["you"] = s is session
            rows.append(row)
        return sorted(rows, key=lambda r: r["since"])

    def end_session(self, session_id: str) -> int:
        """Disconnect every connection of session ``session_id`` (admin); what only it used is freed."""
        with self._sessions_lock:
            conns = [c for c, s in self._conns.values() if s.id == session_id]
        if not conns:
            raise LookupError(f"no session {session_id!r} (see hub_sessions())")
        for conn in conns:
            with contextlib.suppress(OSError):  # the plain socket call: SSLSocket.shutdown would unwrap
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
        log.warning("session ended by admin", extra={"session": session_id, "by": self.current_session().user})
        return len(conns)

    def free_everything(self) -> int:
        return self.table.free_all()

    # -- status for operators and the exporter -------------------------------------
    def enum_definitions_doc(self) -> dict:
        """Return the enums as {name: (enum type, ((member, value), ...))}, as TimeTaggerRPC does."""
        return self.api.enum_definitions()

    def status(self) -> dict[str, Any]:
        """Return the server's state: backend, open devices, sessions, objects."""
        with self._devices_lock:
            devices = [
                {"serial": serial, "model": a._obj.getModel() if a._obj is not None else "?"}
                for serial, a in self._devices.items()
            ]
        return {
            "server": "taggerhub",
            "version": __version__,
            "backend": self.backend_name,
            "backend_version": self.backend.getVersion(),
            "devices": devices,
            "sessions": len(self.sessions()),
            "objects": len(self.table),
            "uptime_s": time.time() - self.stats.started_at,
        }

    def metrics(self) -> dict[str, Any]:
        """Return every figure the exporter publishes, in one call."""
        by_user: dict[tuple[str, str], int] = {}
        for s in self.sessions():
            by_user[(s.user, s.role)] = by_user.get((s.user, s.role), 0) + 1
        return {
            "status": self.status(),
            "rpc": self.stats.snapshot(),
            "sessions": [[u, r, n] for (u, r), n in sorted(by_user.items())],
            "objects": self.table.counts_by_type(),
            "overflows": self.device_overflows(),
        }

    def discoverable_devices(self) -> list[tuple[str, str]]:
        """(serial, model) of every tagger this server can serve: the open ones and the free ones."""
        with self._devices_lock:
            found = {s: a._obj.getModel() if a._obj is not None else "?" for s, a in self._devices.items()}
        for serial in self.backend.scanTimeTagger():
            if serial not in found:
                try:
                    found[serial] = str(self.backend.getTimeTaggerModel(serial))
                except Exception:  # a model we cannot read shows as unknown
                    found[serial] = "?"
        return sorted(found.items())

    def device_overflows(self) -> dict[str, int]:
        """Overflow count per open device, so the exporter needs no extra call per scrape."""
        with self._devices_lock:
            open_devices = [(serial, a._obj) for serial, a in self._devices.items() if a._obj is not None]
        overflows = {}
        for serial, device in open_devices:
            with contextlib.suppress(Exception):  # a failing device shows as missing, not as an error
                overflows[serial] = int(device.getOverflows())
        return overflows


def _peer_of(conn: Any) -> Any:
    try:
        return conn.sock.getpeername()
    except OSError:
        return None


ACCESS_CALLS = {
    "acquireControl": "acquire_control", "releaseControl": "release_control",
    "hub_sessions": "list_sessions", "hub_end_session": "end_session",
}


def _peer_cert(conn: Any) -> dict | None:
    getpeercert = getattr(getattr(conn, "sock", None), "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        return getpeercert() or None
    except (OSError, ValueError):
        return None


def _address_of(conn: Any) -> str:
    try:
        host, port = conn.sock.getpeername()[:2]
        return f"{host}:{port}"
    except (OSError, AttributeError, ValueError):
        return "?"


class HubDaemon(Pyro5.server.Daemon):
    """Pyro5 daemon that opens and closes hub sessions with the connections.

    Plain method calls on served adapters take a short path (:meth:`handleRequest`);
    everything else (pings, batches, one-way calls, attribute access, metadata
    requests, unknown objects) is handed to Pyro5's general request handling.
    """

    def __init__(self, hub: Hub, tls_context: Any = None, **kwargs: Any):
        self.hub = hub
        super().__init__(**kwargs)
        # Pyro5 picks its transport class inside Daemon.__init__; swap in the subclass that does TLS
        # and handshake deadlines on worker threads (it only overrides how connections are accepted).
        self.transportServer.__class__ = listener.HubSocketServer
        self.transportServer.adopt(hub.settings, tls_context, hub.refused_connection)

    def _handshake(self, conn: Any, denied_reason: Any = None) -> bool:
        """Pyro5's handshake, with a connect frame naming no known serializer refused in one log line."""
        try:
            return super()._handshake(conn, denied_reason)
        except KeyError:  # Pyro5 looks the unknown serializer id up again to word its refusal
            return False  # the listener logs and counts it as a "protocol" refusal

    def validateHandshake(self, conn: Any, data: Any) -> Any:
        listener.handshake_state.decided = True
        response = self.hub.open_session(conn, data)
        transport.speed_up(conn)
        conn.peer = _peer_of(conn)
        return response

    def clientDisconnect(self, conn: Any) -> None:
        self.hub.close_session(conn)

    def handleRequest(self, conn: Any) -> None:
        if not isinstance(conn, transport.FastConnection):
            return super().handleRequest(conn)
        header, fields, payload = conn.read_message()  # validates tag, version, magic and size limit
        _, _, msgtype, serializer_id, flags, seq, _, annotations_size, correlation_id, _, _ = fields
        call = None
        if (msgtype == protocol.MSG_INVOKE and not flags & ~protocol.FLAGS_CORR_ID and not annotations_size
                and serializer_id in FAST_SERIALIZER_IDS):
            call = self._plain_call(serializer_id, payload)
        if call is None:
            conn.unread(header + bytes(payload))
            return super().handleRequest(conn)
        target, method, vargs, kwargs, serializer = call
        context = current_context
        context.client = conn
        context.client_sock_addr = getattr(conn, "peer", None)
        context.serializer_id = serializer_id
        try:
            data = serializer.dumps(method(target, *vargs, **kwargs))
        except Exception as exc:
            context.seq = seq
            context.annotations = {}
            context.msg_flags = flags
            context.correlation_id = uuid.UUID(bytes=correlation_id) if flags & protocol.FLAGS_CORR_ID else None
            self._sendExceptionResponse(conn, seq, serializer_id, exc, Pyro5.errors.format_traceback(detailed=False))
            return None
        conn.send_message(protocol.MSG_RESULT, 0, seq, serializer_id, data,
                          correlation_id if flags & protocol.FLAGS_CORR_ID else None)
        return None

    def _plain_call(self, serializer_id: int, payload: Any) -> tuple | None:
        """Decode a call if it is a plain call of an exposed adapter method; None for anything else."""
        serializer = serializers.serializers_by_id[serializer_id]
        try:
            object_id, name, vargs, kwargs = serializer.loadsCall(payload)
        except Exception:
            return None  # let the general path produce Pyro5's error reply
        target = self.objectsById.get(object_id)
        if not isinstance(target, Adapter) or not isinstance(name, str) or name.startswith("_"):
            return None
        method = getattr(type(target), name, None)
        if not callable(method) or not getattr(method, "_pyroExposed", False):
            return None
        return target, method, vargs, kwargs or {}, serializer


def configure_pyro(settings: Settings) -> None:
    """Process-wide Pyro5 settings for a server."""
    pyro_config.SERVERTYPE = "thread"
    pyro_config.THREADPOOL_SIZE = settings.server.max_connections
    pyro_config.THREADPOOL_SIZE_MIN = min(8, settings.server.max_connections)
    pyro_config.MAX_MESSAGE_SIZE = settings.server.max_message_bytes
    pyro_config.SOCK_NODELAY = True
    pyro_config.POLLTIMEOUT = 0.5
    pyro_config.DETAILED_TRACEBACK = False
    pyro_config.COMMTIMEOUT = settings.server.idle_timeout_s or 0.0
    # Hand the GIL over sooner, so a request waiting on a socket is not stuck behind the simulator's thread.
    sys.setswitchinterval(0.0005)
    transport.install(server=True)


def advertised_address(settings: Settings) -> dict[str, Any]:
    """Pyro5's NAT arguments: the address clients use when it is not the bind address (containers)."""
    if not settings.server.advertise_host:
        return {}
    return {"nathost": settings.server.advertise_host, "natport": settings.server.advertise_port}


def build(settings: Settings, backend: ModuleType, backend_name: str) -> tuple[Hub, HubDaemon]:
    """Create the hub and its daemon, listening as the settings say."""
    listener.check_exposure(settings)
    tls_context = tls.server_context(settings.tls) if settings.tls.enabled else None
    configure_pyro(settings)
    hub = Hub(backend, settings, backend_name)
    daemon = HubDaemon(hub, tls_context=tls_context, host=settings.server.host, port=settings.server.port,
                       **advertised_address(settings))
    hub.daemon = daemon
    daemon.register(hub.library, settings.server.object_id)
    return hub, daemon


def serve(settings: Settings, backend: ModuleType, backend_name: str,
          ready: Callable[[str], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; free the device and return the exit status."""
    hub, daemon = build(settings, backend, backend_name)
    stopping = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
            threading.Thread(target=daemon.shutdown, name="taggerhub-shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, lambda _s, _f: _reload_users(hub))
    uri = daemon.uriFor(settings.server.object_id)
    log.info("serving", extra={
        "uri": str(uri), "backend": backend_name, "pid": os.getpid(),
        "host": settings.server.host, "port": daemon.locationStr,
        "auth": settings.auth.enabled, "tls": settings.tls.enabled,
    })
    registrar = start_discovery(settings, hub, str(uri))
    if ready:
        ready(str(uri))
    try:
        daemon.requestLoop(loopCondition=lambda: not stopping.is_set())
    finally:
        if registrar is not None:
            registrar.stop()
        freed = hub.free_everything()
        log.info("stopped", extra={"objects_freed": freed})
        hub.access.audit.close()
    return 0


def start_discovery(settings: Settings, hub: Hub, uri: str) -> Any:
    """With [discovery] enabled, keep this server's taggers registered in the Pyro5 name server."""
    if not settings.discovery.enabled:
        return None
    from ..wire.naming import Registrar

    registrar = Registrar(settings.discovery, uri, hub.discoverable_devices)
    registrar.start()
    return registrar


def _reload_users(hub: Hub) -> None:
    """SIGHUP: re-read the users file now (it is also re-read when it changes)."""
    try:
        hub.access.store.load()
        log.info("users reloaded", extra={"users": len(hub.access.store.users())})
    except Exception as exc:  # keep serving with the users we had
        log.error("users file not reloaded", extra={"error": str(exc)})
