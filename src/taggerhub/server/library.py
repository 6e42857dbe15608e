"""The server's own remote calls on the library object, one handler each.

Which calls exist, who may make them and whether a client may retry them is
declared once in :mod:`taggerhub.access.surface`; this module serves them. Every
handler takes the caller's session first; the rest of its signature and its
docstring are what clients see.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .. import __version__
from ..access.policy import Access
from ..access.surface import SERVER_CALLS
from ..backend.adapter import Adapter
from ..backend.kinds import ObjectKind
from ..experiments import registry as experiment_registry
from ..experiments import serving as experiment_serving
from .callpath import CallPath
from .devices import DeviceRegistry
from .objects import ObjectTable
from .recordings import RecordingCalls
from .sessions import Session, SessionRegistry
from .stats import RpcStats
from .stream import StreamCalls

log = logging.getLogger("taggerhub.server")


class LibraryCalls:
    """Handlers of the server calls: devices, status, the control lease, sessions, experiments."""

    recordings: RecordingCalls  # the FileWriter and hub_recording* calls; set by the hub (they need its settings)

    def __init__(self, backend: ModuleType, backend_name: str, calls: CallPath, devices: DeviceRegistry,
                 experiments: experiment_registry.Catalog, stats: RpcStats):
        self.backend = backend
        self.backend_name = backend_name
        self.calls = calls
        self.devices = devices
        self.catalog = experiments
        self.stats = stats
        self.access: Access = calls.access
        self.sessions: SessionRegistry = calls.sessions
        self.table: ObjectTable = calls.table
        self.stream = StreamCalls(backend, calls, calls.access.quotas.defaults.stream_queue_bytes)

    def handlers(self) -> dict[str, Callable[..., Any]]:
        """Remote name -> handler, for every call in the table."""
        return {call.name: self._handler(call.handler) for call in SERVER_CALLS}

    def _handler(self, name: str) -> Callable[..., Any]:
        """``method`` of this object, or ``part.method`` of one of its parts (``stream``: the tag streams)."""
        target: Any = self
        for attribute in name.split("."):
            target = getattr(target, attribute)
        return target

    def remote_signatures(self) -> dict[str, Callable[..., Any]]:
        """Stand-ins carrying each server-only call's remote signature and doc, for the library adapter."""
        stand_ins = {}
        for call in SERVER_CALLS:
            if call.backend_function:
                continue  # the backend's own function documents it
            handler = self._handler(call.handler)
            signature = inspect.signature(handler)

            def stand_in(*args: Any, **kwargs: Any) -> Any:
                raise RuntimeError("documents a remote call; the call path serves it")

            stand_in.__doc__ = inspect.getdoc(handler)
            stand_in.__signature__ = signature.replace(  # type: ignore[attr-defined]
                parameters=list(signature.parameters.values())[1:])  # without the session
            stand_ins[call.name] = stand_in
        return stand_ins

    # -- devices --------------------------------------------------------------------
    def create_tagger(self, session: Session, *args: Any, **kwargs: Any) -> Adapter:
        """Open the device, or hand out the already open one: one device, many clients."""
        return self.devices.open(session, args, kwargs, self.calls.serve, self.table.use)

    def free_tagger(self, session: Session, tagger: Any) -> bool:
        """This client is done with the tagger; the device closes when no client uses it."""
        adapter = self.calls.tagger_for(tagger, session, (ObjectKind.library, "freeTimeTagger", False))
        if self.access.enabled and self.access.role_now(session) == "admin":
            freed = self.table.release(adapter, session, force=True)
            log.warning("device freed for everyone by an admin", extra={
                "user": session.user, "session": session.id, "objects_freed": freed,
            })
            return True
        self.table.release(adapter, session)
        return True

    def free_all_taggers(self, session: Session) -> None:
        """This client is done with every tagger it uses; a device closes when no client uses it.

        Never closes a device another client still uses, unlike the vendor library in one process.
        """
        admin = self.access.enabled and self.access.role_now(session) == "admin"
        for adapter in self.devices.adapters():
            if admin or self.table.is_used_by(adapter, session):
                self.free_tagger(session, adapter)

    # -- server-side experiments (plugins) ------------------------------------------
    def create_experiment(self, session: Session, name: str, tagger: Any, **params: Any) -> Adapter:
        """Create server-side experiment ``name`` on ``tagger`` with ``params``; see experiments() for names.

        It belongs to its creator like a measurement: get*/is*/wait* methods are for everyone, the rest
        for its creator and admins. It is freed with the tagger or when no client uses it any more.
        """
        cls = self.catalog.get(str(name))
        device = self.calls.tagger_for(tagger, session, (ObjectKind.library, "experiment", False),
                                       " as second argument")
        user, role = self.calls.quota_user(session), self.access.role_now(session)
        self.access.quotas.check_objects(user, role)  # an experiment is an object: before its measurements run
        try:
            instance = cls(self.backend, device._obj, **params)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"experiment {name!r}: {exc}") from None
        guard = experiment_serving.ExperimentGuard(str(name), instance)
        adapter = experiment_serving.adapter_class(cls)(guard, self.calls, ObjectKind.experiment, device)
        try:
            self.access.quotas.book(id(adapter), user, role, 0)
            return self.table.add(adapter, session, parent=device)
        except BaseException:
            self.access.quotas.release(id(adapter))
            guard.taggerhub_close()  # stop the measurements the plugin made
            raise

    def experiments(self, session: Session) -> dict[str, Any]:
        """List the experiment plugins this server offers: name, summary and parameters of each."""
        return self.catalog.describe()

    # -- control lease and sessions (access management) ------------------------------
    def acquire_control(self, session: Session, timeout_s: float = 60.0) -> float:
        """Take the exclusive control lease for ``timeout_s`` seconds: others cannot change device settings.

        Calling it again renews it. It ends on releaseControl(), at its end time, or when you disconnect.
        """
        granted = self.access.lease.acquire(session.id, session.user, session.address, timeout_s)
        log.info("control lease taken", extra={"user": session.user, "session": session.id, "seconds": granted})
        return granted

    def release_control(self, session: Session) -> bool:
        """Give the control lease back (admins may end anyone's); return whether one was held."""
        force = self.access.enabled and self.access.role_now(session) == "admin"
        return self.access.lease.release(session.id, force=force)

    def list_sessions(self, session: Session) -> list[dict[str, Any]]:
        """List connected clients: user, role, address, since, calls, objects owned, lease, usage (admin).

        ``usage`` is the session user's, across all its sessions: objects and estimated measurement
        bytes, each with the user's limit (0: none); ``denied`` counts this session's denied calls.
        """
        holder = self.access.lease.holder()
        quotas = self.access.quotas
        rows = []
        for s in self.sessions.all():
            row = s.describe(self.table.owned_count(s))
            row["role"] = role = self.access.role_now(s)
            row["usage"] = quotas.usage_row(self.calls.quota_user(s), s.user, role)
            row["lease"] = holder is not None and holder.session_id == s.id
            row["you"] = s is session
            rows.append(row)
        return sorted(rows, key=lambda r: r["since"])

    def end_session(self, session: Session, session_id: str) -> int:
        """Disconnect every connection of session ``session_id`` (admin); what only it used is freed."""
        ended = self.sessions.disconnect(session_id)
        if not ended:
            raise LookupError(f"no session {session_id!r} (see hub_sessions())")
        log.warning("session ended by admin", extra={"session": session_id, "by": session.user})
        return ended

    # -- status for operators and the exporter -------------------------------------
    def enum_definitions(self, session: Session) -> dict:
        """Return the enums as {name: (enum type, ((member, value), ...))}, as TimeTaggerRPC does."""
        return self.calls.api.enum_definitions()

    def constant_definitions(self, session: Session) -> dict[str, int | float | str]:
        """Return the library's constants as {name: value} (CHANNEL_UNUSED, TT_CHANNEL_FALLING_EDGES, ...)."""
        return dict(self.calls.api.constants)

    def status(self, session: Session | None = None) -> dict[str, Any]:
        """Return the server's state: backend, open devices, sessions, objects, the lease holder, and who asks.

        ``you`` lets a client that holds only a token (the web page) learn its user and role.
        """
        you = None if session is None else {
            "user": session.user, "role": self.access.role_now(session), "session": session.id}
        return {
            "server": "taggerhub",
            "version": __version__,
            "backend": self.backend_name,
            "backend_version": self.backend.getVersion(),
            "devices": self.devices.describe(),
            "sessions": len(self.sessions.all()),
            "objects": len(self.table),
            "uptime_s": time.time() - self.stats.started_at,
            "lease": self.access.lease.state(),
            "streams": self.stream.totals(),
            "you": you,
        }

    def metrics(self, session: Session | None = None) -> dict[str, Any]:
        """Return every figure the exporter publishes, in one call."""
        by_user: dict[tuple[str, str], int] = {}
        for s in self.sessions.all():
            key = (s.user, self.access.role_now(s))
            by_user[key] = by_user.get(key, 0) + 1
        return {
            "status": self.status(),
            "rpc": self.stats.snapshot(),
            "sessions": [[u, r, n] for (u, r), n in sorted(by_user.items())],
            "objects": self.table.counts_by_type(),
            "overflows": self.devices.overflows(),
            "streams": self.stream.totals(),
        }
