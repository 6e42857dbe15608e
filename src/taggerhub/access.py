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
from collections.abc import Callable
from typing import Any

from . import permissions
from .audit import AuditLog, summarize
from .auth import Role, UserStore
from .config import ConfigError, Settings
from .errors import AccessDenied
from .lease import ControlLease
from .permissions import Level

log = logging.getLogger("taggerhub.access")


class HandshakeRefused(AccessDenied):
    """A connection was refused before any object became reachable; ``reason`` is a short label."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def certificate_user(peer_cert: dict | None) -> str:
    """The common name of a verified client certificate, or ''."""
    for rdn in (peer_cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


class Access:
    """Identity, permissions, ownership, lease and audit for one hub."""

    def __init__(self, settings: Settings, store: UserStore | None = None):
        self.enabled = settings.auth.enabled
        self.max_per_user = settings.auth.max_connections_per_user
        self.store = store or UserStore(settings.auth.users_file)
        if self.enabled:
            if not self.store.path.is_file():
                raise ConfigError(f"auth is enabled but the users file {str(self.store.path)!r} does not exist; "
                                  "create it with 'taggerhub user add NAME --role ROLE'")
            self.store.load()
        self.audit = AuditLog(settings.auth.audit_log)
        self.lease = ControlLease()
        self._lock = threading.Lock()
        self._connections: dict[str, int] = {}  # per user
        self._session_users: dict[str, str] = {}  # session id -> user, for ownership by user

    # -- connections ----------------------------------------------------------------
    def admit(self, handshake: Any, address: str, peer_cert: dict | None) -> tuple[str, str]:
        """Return (user, role) for a new connection, or raise :class:`HandshakeRefused`."""
        if not self.enabled:
            return "anonymous", Role.admin.name
        self.store.reload_if_changed()
        token = handshake.get("token", "") if isinstance(handshake, dict) else ""
        token = token if isinstance(token, str) else ""
        cert_name = certificate_user(peer_cert)
        if token:
            user = self.store.authenticate(token)
            if user is None:
                raise HandshakeRefused("bad_token", "access token not valid (unknown, removed or rotated)")
            if cert_name and cert_name != user.name:
                raise HandshakeRefused("cert_mismatch", f"client certificate is for {cert_name!r}, "
                                                        f"the token for {user.name!r}")
        elif cert_name:
            user = self.store.get(cert_name)
            if user is None:
                raise HandshakeRefused("unknown_user",
                                       f"client certificate user {cert_name!r} is not in the users file")
        else:
            raise HandshakeRefused("no_token", "this server needs an access token "
                                               "(createProxy(token=...) or TAGGERHUB_TOKEN) or a client certificate")
        with self._lock:
            count = self._connections.get(user.name, 0)
            if count >= self.max_per_user:
                raise HandshakeRefused("user_connections", f"user {user.name!r} already has {count} connections "
                                                           f"(limit auth.max_connections_per_user={self.max_per_user})")
            self._connections[user.name] = count + 1
        return user.name, user.role.name

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
    def authorize(self, session: Any, kind: str, method: str, owner: Callable[[], str | None],
                  is_constructor: bool = False) -> Level | None:
        """Raise AccessDenied unless ``session`` may call ``method`` on an object of ``kind``; return its level."""
        if not self.enabled:  # no identities to check, but the control lease still binds sessions
            if self.lease.held() and permissions.level_of(kind, method, is_constructor)[0] is Level.setting:
                self.lease.check(session.id)
            return None
        level, _rule = permissions.level_of(kind, method, is_constructor)
        # The users file is the truth for connected sessions too: removals and role changes apply at once.
        self.store.reload_if_changed()
        user = self.store.get(session.user)
        if user is None:
            raise AccessDenied(f"user {session.user!r} has been removed from the users file")
        role = user.role
        if session.role != role.name:
            session.role = role.name
        if not permissions.allowed(role, level):
            raise AccessDenied(f"{method}() needs role {permissions.MIN_ROLE[level].name} or higher; "
                               f"user {session.user!r} is {role.name}")
        owner_id = owner() if level is Level.own and role < Role.admin else None
        if owner_id is not None and owner_id != session.id:
            with self._lock:
                owner_user = self._session_users.get(owner_id)
            if owner_user != session.user:
                raise AccessDenied(f"{method}(): this measurement belongs to "
                                   f"{owner_user or 'a client that has left'!r}; only its creator or an admin may "
                                   "change it (reading is allowed)")
        if level is Level.setting:
            self.lease.check(session.id)
        return level

    def audited(self, level: Level) -> bool:
        return self.audit.path != "" and level in permissions.STATE_CHANGING

    def record_call(self, session: Any, method: str, args: tuple, kwargs: dict, outcome: str,
                    error: str = "") -> None:
        self.audit.write("call", user=session.user, role=session.role, address=session.address,
                         session=session.id, method=method, args=summarize(args, kwargs), outcome=outcome,
                         **({"error": error} if error else {}))
