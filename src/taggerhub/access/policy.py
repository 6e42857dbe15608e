"""Access decisions for the hub: who a connection is, what they may call, and the audit trail.

:class:`Access` admits or refuses a connection from its handshake token or its
client certificate, counts connections per user, checks every call against the
permission table, object ownership and the control lease, and writes the audit
log. With ``[auth] enabled = false`` every connection is admitted as
``anonymous`` and no call is checked (the vendor's setup on localhost).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import AuthSettings, ConfigError, LimitsSettings
from ..errors import AccessDenied, RefusalReason
from . import rules
from .audit import AuditLog, summarize
from .lease import ControlLease
from .quotas import Quotas
from .rules import ArgUse, Level
from .throttle import DeniedThrottle
from .users import Role, UserStore

log = logging.getLogger("taggerhub.access")


class HandshakeRefused(AccessDenied):
    """A connection was refused before any object became reachable; ``reason`` is a short label."""

    def __init__(self, reason: RefusalReason, message: str):
        super().__init__(message)
        self.reason = reason


def certificate_user(peer_cert: dict | None) -> str:
    """The common name of a verified client certificate, or ''."""
    for rdn in (peer_cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


@dataclass(frozen=True)
class Admission:
    """Who a connection is, and the credential it proved (a token's stored hash; '' for a certificate)."""

    user: str
    role: str
    credential: str = ""


@dataclass(frozen=True)
class ObjectRef:
    """A server object passed to a call as an argument, as the access checks see it."""

    kind: str  # "tagger", "iterator", "synchronized", "experiment", "result"
    label: str  # for messages: "Countrate obj_1a2b..."
    owner: str | None  # session id of its creator
    group: ObjectRef | None = None  # a group's tagger (getTagger()): the SynchronizedMeasurements behind it


class Access:
    """Identity, permissions, ownership, lease and audit for one hub."""

    def __init__(self, auth: AuthSettings, limits: LimitsSettings, store: UserStore | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.enabled = auth.enabled
        self.max_per_user = auth.max_connections_per_user
        self.admin_connections = limits.admin_connections
        self.store = store or UserStore(auth.users_file)
        if self.enabled:
            if not self.store.path.is_file():
                raise ConfigError(f"auth is enabled but the users file {str(self.store.path)!r} does not exist; "
                                  "create it with 'taggerhub user add NAME --role ROLE'")
            self.store.load()
        self.audit = AuditLog(auth.audit_log)
        self.lease = ControlLease(clock)
        self.quotas = Quotas(limits)
        self.throttle = DeniedThrottle(limits)
        self._lock = threading.Lock()
        self._connections: dict[str, int] = {}  # per user
        self._session_users: dict[str, str] = {}  # session id -> user, for ownership by user

    # -- connections ----------------------------------------------------------------
    def admit(self, handshake: Any, address: str, peer_cert: dict | None, admins_only: bool = False) -> Admission:
        """Who a new connection is, or raise :class:`HandshakeRefused`.

        ``admins_only``: the connection got one of the workers kept for admins
        (``limits.admin_connections``), so anyone else is refused as ``busy``.
        """
        if not self.enabled:
            return Admission("anonymous", Role.admin.name)
        self.store.reload_if_changed()
        token = handshake.get("token", "") if isinstance(handshake, dict) else ""
        token = token if isinstance(token, str) else ""
        cert_name = certificate_user(peer_cert)
        if token:
            user = self.store.authenticate(token)
            if user is None:
                raise HandshakeRefused(RefusalReason.bad_token, "access token not valid (unknown, removed or rotated)")
            if cert_name and cert_name != user.name:
                raise HandshakeRefused(RefusalReason.cert_mismatch, f"client certificate is for {cert_name!r}, "
                                                                    f"the token for {user.name!r}")
        elif cert_name:
            user = self.store.get(cert_name)
            if user is None:
                raise HandshakeRefused(RefusalReason.unknown_user,
                                       f"client certificate user {cert_name!r} is not in the users file")
        else:
            raise HandshakeRefused(RefusalReason.no_token, "this server needs an access token (createProxy(token=...) "
                                                           "or TAGGERHUB_TOKEN) or a client certificate")
        if admins_only and user.role.name != Role.admin.name:
            raise HandshakeRefused(RefusalReason.busy, "the server is at server.max_connections but for the "
                                   f"limits.admin_connections={self.admin_connections} kept for admins; try later")
        if self.throttle.cooling(user.name):
            raise HandshakeRefused(RefusalReason.throttled, f"user {user.name!r} made too many denied calls; "
                                   "try again later (limits.denied_burst, limits.denied_per_s)")
        with self._lock:
            count = self._connections.get(user.name, 0)
            if count >= self.max_per_user:
                raise HandshakeRefused(RefusalReason.user_connections,
                                       f"user {user.name!r} already has {count} connections "
                                       f"(limit auth.max_connections_per_user={self.max_per_user})")
            self._connections[user.name] = count + 1
        return Admission(user.name, user.role.name, user.token_hash if token else "")

    def bind_session(self, session_id: str, user: str) -> None:
        with self._lock:
            self._session_users[session_id] = user

    def connection_closed(self, user: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            left = self._connections.get(user, 0) - 1
            if left > 0:
                self._connections[user] = left
            else:
                self._connections.pop(user, None)

    def session_closed(self, session_id: str) -> None:
        if self.lease.drop(session_id):
            log.info("control lease ended: holder disconnected", extra={"session": session_id})
        with self._lock:
            self._session_users.pop(session_id, None)

    # -- calls ----------------------------------------------------------------------
    def checks_calls(self) -> bool:
        """Whether any call can be refused now: auth on, or a control lease held (False: the fast path)."""
        return self.enabled or self.lease.held()

    def authorize(self, session: Any, kind: str, method: str, owner: Callable[[], str | None],
                  is_constructor: bool = False) -> Level | None:
        """Raise AccessDenied unless ``session`` may call ``method`` on an object of ``kind``; return its level."""
        if not self.enabled:  # no identities to check, but the control lease still binds sessions
            if self.lease.held() and rules.level_of(kind, method, is_constructor)[0] is Level.setting:
                self.lease.check(session.id)
            return None
        level, min_role = rules.requirement(kind, method, is_constructor)
        role = self._current_role(session)
        if role < min_role:
            raise AccessDenied(f"{method}() needs role {rules.MIN_ROLE[level].name} or higher; "
                               f"user {session.user!r} is {role.name}")
        owner_id = owner() if level is Level.own and role < Role.admin else None
        owner_user = self._foreign_owner(session, owner_id)
        if owner_user is not None:
            raise AccessDenied(f"{method}(): this measurement belongs to {owner_user!r}; only its creator or "
                               "an admin may change it (reading is allowed)")
        if level is Level.setting:
            self.lease.check(session.id)
        return level

    def authorize_argument(self, session: Any, kind: str, method: str, is_constructor: bool, ref: ObjectRef) -> None:
        """Raise AccessDenied unless ``session`` may have ``method`` change the object ``ref`` passed to it.

        A call that can change an object it is handed needs the same right as changing that object
        directly (see ``rules.ARGUMENT_RULES``): otherwise registering another user's measurement
        in one's own SynchronizedMeasurements would let the group's start/stop/clear drive it.
        """
        if rules.level_of(kind, method, is_constructor)[0] not in rules.STATE_CHANGING:
            return  # a read only reads its arguments
        use, _rule = rules.argument_use(kind, method, is_constructor)
        if use is ArgUse.release:
            return
        if use is ArgUse.attach:
            if ref.group is None:
                return
            ref, needed, how = ref.group, Level.own, f"would join {ref.group.label} (made on its getTagger())"
        else:
            needed, how = rules.ARGUMENT_LEVEL.get(ref.kind, Level.admin), f"would change {ref.label}"
        where = f"{method}() {how}, passed as an argument"
        if self.enabled:
            role = self._current_role(session)
            if not rules.allowed(role, needed):
                raise AccessDenied(f"{where}: that needs role {rules.MIN_ROLE[needed].name} or higher; "
                                   f"user {session.user!r} is {role.name}")
            owner_user = self._foreign_owner(session, ref.owner) if needed is Level.own and role < Role.admin \
                else None
            if owner_user is not None:
                raise AccessDenied(f"{where}: it belongs to {owner_user!r}; only its creator or an admin may "
                                   "have it changed (reading is allowed)")
        if needed is Level.setting:
            try:
                self.lease.check(session.id)
            except AccessDenied as exc:
                raise AccessDenied(f"{where}: {exc}") from None

    def _current_role(self, session: Any) -> Role:
        """The session user's role now: the users file is the truth, removals and role changes apply at once."""
        self.store.reload_if_changed()
        user = self.store.get(session.user)
        if user is None:
            raise AccessDenied(f"user {session.user!r} has been removed from the users file")
        if session.credential and session.credential != user.token_hash:
            raise AccessDenied(f"the token user {session.user!r} connected with has been replaced (rotated); "
                               "connect again with the new token")
        return user.role

    def role_now(self, session: Any) -> str:
        """The role the session's user has now (the one it connected with, if auth is off or it is gone)."""
        if not self.enabled:
            return session.role
        user = self.store.get(session.user)
        return user.role.name if user is not None else session.role

    def _foreign_owner(self, session: Any, owner_id: str | None) -> str | None:
        """The owning user's name if ``owner_id`` is another user's session, else None."""
        if owner_id is None or owner_id == session.id:
            return None
        with self._lock:
            owner_user = self._session_users.get(owner_id)
        return None if owner_user == session.user else (owner_user or "a client that has left")

    def record_call(self, session: Any, method: str, args: tuple, kwargs: dict, outcome: str,
                    error: str = "") -> None:
        self.audit.write("call", user=session.user, role=self.role_now(session), address=session.address,
                         session=session.id, method=method, args=summarize(args, kwargs), outcome=outcome,
                         **({"error": error} if error else {}))
