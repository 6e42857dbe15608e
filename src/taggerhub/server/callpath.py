"""The call path: every remote call on a served object passes through :class:`CallPath`.

It is the adapters' :class:`~taggerhub.backend.adapter.CallGate`: it finds the
caller's session, checks the call (role, owner, lease), resolves proxies passed
as arguments to the objects behind them (checking those too), calls the backend,
serves backend objects it returns, and counts, times, logs and audits the call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import Pyro5.api
from Pyro5.callcontext import current_context

from ..access.policy import Access, ObjectRef
from ..access.rules import STATE_CHANGING, Level, level_of
from ..backend.adapter import Adapter, BackendApi
from ..backend.kinds import ObjectKind
from ..errors import AccessDenied, ObjectGone
from ..wire import codecs, pyro_compat
from .holding import read_virtual_channels
from .objects import ObjectTable
from .sessions import Session, SessionRegistry
from .stats import RpcStats

log = logging.getLogger("taggerhub.server")
ArgCall = tuple[str, str, bool]  # (kind of the called object, method, is a constructor): for argument checks
SERIALIZER_NAMES = {1: "serpent", 2: "json", 3: "marshal", 4: "msgpack", codecs.TAGGERHUB_SERIALIZER_ID: "taggerhub"}
SYNCHRONIZED_CLASS = "SynchronizedMeasurements"


PLAIN_ARGS = (str, int, float, bool, type(None))


def client_safe(exc: Exception, method: str) -> Exception | None:
    """An exception any client can deserialize in place of ``exc`` (None: ``exc`` already is one).

    Pyro5 clients rebuild only built-in, Pyro5 and (taggerhub's client) a few taggerhub exceptions,
    with plain arguments; numpy's out-of-memory error carries a dtype object and reached clients as
    "Error serializing exception". Such errors become their nearest built-in class with a text that
    names the call; an allocation failure says what was too big.
    """
    if isinstance(exc, MemoryError):
        return MemoryError(f"{method}(): the server could not allocate the memory this needs "
                           f"({exc or 'out of memory'}); ask for fewer bins, values or channels")
    module = type(exc).__module__
    plain = all(isinstance(arg, PLAIN_ARGS) for arg in exc.args)
    if plain and (module == "builtins" or module.startswith("Pyro5") or isinstance(exc, AccessDenied | ObjectGone)):
        return None
    base = next(c for c in type(exc).__mro__ if c.__module__ == "builtins" and issubclass(c, Exception))
    return base(f"{exc}" if plain or module != "builtins" else f"{method}(): {exc}")


def throttle_session(access: Access, sessions: SessionRegistry, session: Session) -> bool:
    """Past the user's denied-call burst: close this session, audit and log it once; True if so."""
    if not access.throttle.over(session.user):
        return False
    session.throttled = True
    limits = access.quotas.defaults
    access.audit.write("throttled", user=session.user, address=session.address, session=session.id,
                       denied=session.denied, limit=f"limits.denied_burst={limits.denied_burst}, "
                                                    f"limits.denied_per_s={limits.denied_per_s:g}")
    log.warning("session closed: too many denied calls", extra={
        "user": session.user, "session": session.id, "client": session.address, "denied": session.denied})
    sessions.disconnect(session.id)
    return True


def failure_of(access: Access, sessions: SessionRegistry, session: Session, method: str,
               exc: Exception) -> tuple[str, str, Exception | None]:
    """Log a failed call: its outcome, error text, and the exception to raise instead, if any.

    Denials become PermissionError for clients that only know built-in exception classes (the vendor's).
    """
    if isinstance(exc, AccessDenied):
        session.denied += 1
        if session.throttled or throttle_session(access, sessions, session):
            return "denied", str(exc), None if session.client_id else PermissionError(str(exc))
        log.info("call denied", extra={
            "client": session.address, "session": session.id, "user": session.user, "method": method,
            "error": str(exc),
        })
        return "denied", str(exc), None if session.client_id else PermissionError(str(exc))
    log.info("call failed", extra={
        "client": session.address, "session": session.id, "method": method,
        "error": f"{type(exc).__name__}: {exc}",
    })
    return "error", f"{type(exc).__name__}: {exc}", client_safe(exc, method)


class CallPath:
    """The one door of every remote call: session, checks, argument mapping, result wrapping, statistics."""

    def __init__(self, api: BackendApi, access: Access, sessions: SessionRegistry, table: ObjectTable,
                 stats: RpcStats):
        self.api = api
        self.access = access
        self.sessions = sessions
        self.table = table
        self.stats = stats
        self.server_calls: dict[str, Callable[..., Any]] = {}  # name -> handler(session, *args, **kwargs)

    def current_session(self) -> Session:
        session = getattr(current_context.client, "taggerhub_session", None)
        if session is None:
            session = self.sessions.of(current_context.client)
        if not session.serializer:
            session.serializer = SERIALIZER_NAMES.get(current_context.serializer_id or 0, "?")
        return session

    # -- argument and result mapping ----------------------------------------------
    def adapter_for(self, ref: Any, session: Session, call: ArgCall | None = None) -> Adapter:
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

    def tagger_for(self, ref: Any, session: Session, call: ArgCall, position: str = "") -> Adapter:
        """The tagger behind a proxy argument, checked as an argument of ``call``; ``position`` words errors."""
        adapter = self.adapter_for(ref, session, call)
        if adapter._kind != ObjectKind.tagger:
            raise TypeError(f"{call[1]}() needs a tagger{position}, got a {type(adapter).__name__}")
        return adapter

    def _object_ref(self, adapter: Adapter) -> ObjectRef:
        """What the access checks need to know about an object passed as an argument."""
        parent = adapter._parent
        group = self._object_ref(parent) if adapter._kind == ObjectKind.tagger and parent is not None \
            and parent._kind == ObjectKind.synchronized else None
        return ObjectRef(adapter._kind, f"{type(adapter).__name__} {pyro_compat.object_id_of(adapter, '?')}",
                         self.table.owner_of(adapter), group)

    def _resolve(self, value: Any, session: Session, call: ArgCall | None = None) -> Any:
        if isinstance(value, Pyro5.api.Proxy | Pyro5.api.URI | Adapter):
            return self.adapter_for(value, session, call)._obj
        if isinstance(value, list | tuple) and any(isinstance(v, Pyro5.api.Proxy | Pyro5.api.URI) for v in value):
            return type(value)(self._resolve(v, session, call) for v in value)
        return value

    def resolve_all(self, args: tuple, kwargs: dict, session: Session,
                    call: ArgCall | None = None) -> tuple[tuple, dict]:
        return (
            tuple(self._resolve(a, session, call) for a in args),
            {k: self._resolve(v, session, call) for k, v in kwargs.items()},
        )

    def serve(self, obj: Any, session: Session, parent: Adapter | None = None, nbytes: int = 0) -> Adapter:
        """Serve backend object ``obj``, owned by ``session``, as a child of ``parent``; booked to its user.

        A shared tagger is not booked (every client gets the same one); anything else counts against
        the user's ``limits.max_objects``.
        """
        adapter = self.api.wrap(obj, self, parent)
        if adapter._kind != ObjectKind.tagger:
            self.access.quotas.book(id(adapter), self.quota_user(session), self.access.role_now(session), nbytes)
        try:
            return self.table.add(adapter, session, parent=parent)
        except BaseException:
            self.access.quotas.release(id(adapter))
            raise

    def quota_user(self, session: Session) -> str:
        """Whose quota an object counts against: the user, or with auth off (everyone anonymous) the session."""
        return session.user if self.access.enabled else f"session {session.id}"

    def _wrap(self, result: Any, parent: Adapter | None, session: Session) -> Any:
        return self.serve(result, session, parent) if self.api.is_backend_object(result) else result

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
            outcome, error, replacement = failure_of(self.access, self.sessions, session, method, exc)
            if replacement is not None:
                raise replacement from None
            raise
        finally:
            session.calls += 1
            session.last_call = time.monotonic()
            self.stats.record_call(method, outcome, time.perf_counter() - started)
            if audit is not None and self.access.audit.path and not session.throttled:
                self._audit(session, method, audit, outcome, error)

    def _audit(self, session: Session, method: str, audit: tuple[str, str, tuple, dict], outcome: str,
               error: str) -> None:
        kind, name, args, kwargs = audit
        is_constructor = kind == ObjectKind.library and name in self.api.iterator_classes
        if level_of(kind, name, is_constructor)[0] in STATE_CHANGING:
            self.access.record_call(session, method, args, kwargs, outcome, error)

    def authorize(self, session: Session, target: Adapter | None, method: str) -> Level | None:
        """Raise AccessDenied if ``session`` may not call ``method`` on ``target`` (role, owner, lease).

        Return the call's level, or None with auth off (then nothing is checked).
        """
        if not self.access.checks_calls():
            return None
        if target is None:
            is_constructor = method in self.api.iterator_classes or method == SYNCHRONIZED_CLASS
            return self.access.authorize(session, ObjectKind.library, method, lambda: None, is_constructor)
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
            call_args, call_kwargs = self.resolve_all(args, kwargs, session, (target._kind, method, False))
            result = getattr(obj, method)(*call_args, **call_kwargs)
        else:
            result = getattr(obj, method)()
        return self._wrap(result, target, session) if self.api.is_backend_object(result) else result

    def construct(self, library: Adapter, class_name: str, args: tuple, kwargs: dict) -> Any:
        return self._timed_library_call(self._construct, class_name, args, kwargs)

    def library_call(self, library: Adapter, name: str, args: tuple, kwargs: dict) -> Any:
        return self._timed_library_call(self._library_call, name, args, kwargs)

    def _timed_library_call(self, action: Callable[..., Any], name: str, args: tuple, kwargs: dict) -> Any:
        """A call of the library object's ``name``, run by ``action`` as one client call (counted, audited)."""
        session = self.current_session()
        return self._timed(f"TimeTaggerRPC.{name}", session, action, (ObjectKind.library, name, args, kwargs),
                           session, name, args, kwargs)

    def _construct(self, session: Session, class_name: str, args: tuple, kwargs: dict) -> Adapter:
        self.authorize(session, None, class_name)
        cls = self.api.iterator_classes.get(class_name) or (
            self.api.sync_class if class_name == SYNCHRONIZED_CLASS else None
        )
        if cls is None:
            raise AttributeError(f"unknown measurement class {class_name!r}")
        call_args = list(args)
        tagger_ref = call_args.pop(0) if call_args else kwargs.pop("tagger", None)
        if not isinstance(tagger_ref, Pyro5.api.Proxy | Pyro5.api.URI):
            raise TypeError(f"{class_name}() needs the tagger proxy as its first argument, "
                            f"got {type(tagger_ref).__name__}")
        call: ArgCall = (ObjectKind.library, class_name, True)
        tagger = self.tagger_for(tagger_ref, session, call, " as first argument")
        rest, call_kwargs = self.resolve_all(tuple(call_args), kwargs, session, call)
        role = self.access.role_now(session)
        user = self.quota_user(session)
        nbytes = self.access.quotas.check_measurement(user, role, class_name, cls, rest, call_kwargs)
        self.access.quotas.check_objects(user, role)  # before the measurement exists and runs
        adapter = self.serve(cls(tagger._obj, *rest, **call_kwargs), session, parent=tagger, nbytes=nbytes)
        held = read_virtual_channels(tagger, self.table.children_of, adapter, (*rest, *call_kwargs.values()))
        if held:
            self.table.hold(adapter, held)  # it reads their channels: they live while it does
        return adapter

    def _library_call(self, session: Session, name: str, args: tuple, kwargs: dict) -> Any:
        self.authorize(session, None, name)
        handler = self.server_calls.get(name)
        if handler is not None:
            return handler(session, *args, **kwargs)
        function = self.api.functions.get(name)
        if function is None:
            raise AttributeError(f"unknown function {name!r}")
        call_args, call_kwargs = self.resolve_all(args, kwargs, session, (ObjectKind.library, name, False))
        return self._wrap(function(*call_args, **call_kwargs), None, session)
