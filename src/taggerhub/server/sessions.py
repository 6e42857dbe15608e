"""Who is connected: one :class:`Session` per client process, shared by its connections.

taggerhub's client names its process in the handshake, so all its proxies share
one session (and its objects); other clients (the vendor's) get one session per
connection. The :class:`SessionRegistry` keeps them by connection and by client id.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_session_numbers = itertools.count(1)


@dataclass
class Session:
    """One client: a process with one or more connections (one per Pyro5 proxy).

    taggerhub's client names its process in the handshake, so all its proxies
    share one session; other clients (the vendor's) get one session per connection.
    """

    address: str
    client_id: str = ""
    connections: int = 1
    user: str = "anonymous"
    role: str = "admin"
    credential: str = ""  # the stored hash of the token it connected with: a rotation ends its rights
    serializer: str = ""
    since: float = field(default_factory=time.time)
    id: str = field(default_factory=lambda: f"s{next(_session_numbers)}")
    calls: int = 0
    last_call: float = field(default_factory=time.monotonic)
    closed: bool = False
    denied: int = 0  # denied calls of this session
    throttled: bool = False  # closed for too many denied calls: its last calls are neither logged nor audited

    def describe(self, owned: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "role": self.role,
            "address": self.address,
            "connections": self.connections,
            "since": self.since,
            "calls": self.calls,
            "objects_owned": owned,
            "denied": self.denied,
        }


class SessionRegistry:
    """Sessions by connection and by client id, under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_connection: dict[int, tuple[Any, Session]] = {}  # id(conn) -> (conn, session)
        self._by_client: dict[str, Session] = {}
        self._local: dict[int, Session] = {}  # in-process callers, by id() of their call context's client

    def open(self, conn: Any, address: str, client_id: str, user: str, role: str, credential: str) -> Session:
        """The session of a newly admitted connection: the client process's existing one, or a new one."""
        with self._lock:
            session = self._by_client.get(client_id) if client_id else None
            if session is not None:
                session.connections += 1
                # The process proved the user's current token: its older connections may go on too.
                session.credential = credential
            else:
                session = Session(address=address, client_id=client_id, user=user, role=role, credential=credential)
                if client_id:
                    self._by_client[client_id] = session
            self._by_connection[id(conn)] = (conn, session)
        return session

    def close(self, conn: Any) -> tuple[Session, bool] | None:
        """Forget ``conn``: its session and whether that was the session's last connection (None: unknown)."""
        with self._lock:
            found = self._by_connection.pop(id(conn), None)
            if found is None:
                return None
            session = found[1]
            session.connections -= 1
            if session.connections > 0:
                return session, False
            if session.client_id and self._by_client.get(session.client_id) is session:
                self._by_client.pop(session.client_id, None)
        session.closed = True
        return session, True

    def of(self, conn: Any) -> Session:
        """The session behind ``conn``; calls that arrive without a connection (in-process) get a local one."""
        with self._lock:
            found = self._by_connection.get(id(conn))
            if found is not None:
                return found[1]
            session = self._local.get(id(conn))
            if session is None:
                session = self._local[id(conn)] = Session(address="local")
            return session

    def all(self) -> list[Session]:
        with self._lock:
            sessions = [s for _, s in self._by_connection.values()] + list(self._local.values())
        return list({id(s): s for s in sessions}.values())

    def connections_of(self, session_id: str | None = None) -> list[Any]:
        """The open connections of session ``session_id``, or of every session."""
        with self._lock:
            return [conn for conn, s in self._by_connection.values() if session_id is None or s.id == session_id]

    def disconnect(self, session_id: str | None = None) -> int:
        """Shut the sockets of a session's connections (of all, with None); their workers then close them.

        Returns how many. Only the sockets are shut here: each worker sees the end of its
        connection and runs the usual disconnect, so sessions end the one way they always do.
        """
        conns = self.connections_of(session_id)
        for conn in conns:
            with contextlib.suppress(OSError, AttributeError):  # the plain call: SSLSocket.shutdown would unwrap
                socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
        return len(conns)
