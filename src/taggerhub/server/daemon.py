"""The Pyro5 daemon of the hub: sessions open and close with connections; plain calls take a short path.

:class:`HubDaemon` overrides Pyro5's documented daemon hooks (``validateHandshake``,
``clientDisconnect``, ``handleRequest``) and nothing else of the request handling.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import Pyro5.errors
from Pyro5 import config as pyro_config
from Pyro5 import protocol
from Pyro5.callcontext import current_context

from ..backend.adapter import Adapter
from ..config import ServerSettings
from ..wire import codecs, pyro_compat
from ..wire.addresses import peer_address
from ..wire.connection import FastConnection, speed_up
from . import listener, oneway
from .daemonobject import HubDaemonObject
from .hub import Hub

FAST_SERIALIZER_IDS = frozenset({codecs.TAGGERHUB_SERIALIZER_ID, pyro_compat.MsgpackSerializer.serializer_id,
                                 pyro_compat.SerpentSerializer.serializer_id})


class HubDaemon(pyro_compat.Daemon):
    """Pyro5 daemon that opens and closes hub sessions with the connections.

    Plain method calls on served adapters take a short path (:meth:`handleRequest`);
    everything else (pings, batches, one-way calls, attribute access, metadata
    requests, unknown objects) is handed to Pyro5's general request handling.
    """

    def __init__(self, hub: Hub, tls_context: Any = None, **kwargs: Any):
        self.hub = hub
        self.oneway = oneway.OnewayCalls(hub.settings.limits)
        kwargs.setdefault("interface", HubDaemonObject)
        super().__init__(**kwargs)
        # Pyro5 picks its transport class inside Daemon.__init__; swap in the subclass that does TLS
        # and handshake deadlines on worker threads (it only overrides how connections are accepted).
        server = pyro_compat.transport_server(self)
        server.__class__ = listener.HubSocketServer
        server.adopt(hub.settings, tls_context, hub.refused_connection, hub.stats.record_refused)

    def _handshake(self, conn: Any, denied_reason: Any = None) -> bool:  # pyro_compat.DAEMON_HANDSHAKE
        """Pyro5's handshake, with a connect frame naming no known serializer refused in one log line."""
        try:
            return super()._handshake(conn, denied_reason)
        except KeyError:  # Pyro5 looks the unknown serializer id up again to word its refusal
            return False  # the listener logs and counts it as a "protocol" refusal

    def validateHandshake(self, conn: Any, data: Any) -> Any:
        conn.handshake_decided = True  # the listener: the hub admitted or refused it
        response = self.hub.open_session(conn, data)
        speed_up(conn)
        conn.peer = peer_address(conn)
        return response

    def clientDisconnect(self, conn: Any) -> None:
        self.hub.close_session(conn)

    def handleRequest(self, conn: Any) -> None:
        if not isinstance(conn, FastConnection):
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
            pyro_compat.send_exception_response(self, conn, seq, serializer_id, exc,
                                                Pyro5.errors.format_traceback(detailed=False))
            return None
        conn.send_message(protocol.MSG_RESULT, 0, seq, serializer_id, data,
                          correlation_id if flags & protocol.FLAGS_CORR_ID else None)
        return None

    def _plain_call(self, serializer_id: int, payload: Any) -> tuple | None:
        """Decode a call if it is a plain call of an exposed adapter method; None for anything else."""
        serializer = pyro_compat.serializer_by_id(serializer_id)
        try:
            object_id, name, vargs, kwargs = serializer.loadsCall(payload)
        except Exception:
            return None  # let the general path produce Pyro5's error reply
        target = pyro_compat.registered_objects(self).get(object_id)
        if not isinstance(target, Adapter) or not isinstance(name, str) or name.startswith("_"):
            return None
        method = getattr(type(target), name, None)
        if not callable(method) or not pyro_compat.is_exposed(method):
            return None
        return target, method, vargs, kwargs or {}, serializer


def configure_pyro(server: ServerSettings) -> None:
    """Process-wide Pyro5 settings for a server."""
    pyro_config.SERVERTYPE = "thread"
    pyro_config.THREADPOOL_SIZE = server.max_connections
    pyro_config.THREADPOOL_SIZE_MIN = min(8, server.max_connections)
    pyro_config.MAX_MESSAGE_SIZE = server.max_message_bytes
    pyro_config.SOCK_NODELAY = True
    pyro_config.POLLTIMEOUT = 0.5
    pyro_config.DETAILED_TRACEBACK = False
    pyro_config.COMMTIMEOUT = server.idle_timeout_s or 0.0
    # Hand the GIL over sooner, so a request waiting on a socket is not stuck behind the simulator's thread.
    sys.setswitchinterval(0.0005)
    codecs.install(server=True)
    oneway.install()
