"""Every Pyro5 internal taggerhub relies on, named once, each with what it assumes.

taggerhub speaks Pyro5's wire protocol on its own fast paths and hooks into Pyro5's proxy,
daemon and thread-pool server where Pyro5 offers no public hook. Those hooks use private,
name-mangled or undocumented parts of Pyro5; they are all named here, so that a Pyro5
upgrade is checked in one module and one test file (``tests/unit/wire/test_pyro_compat.py``)
against the range pinned in ``pyproject.toml`` (:data:`TESTED_RANGE`).

Every package reaches these internals only through this module (the test file checks that no
module outside ``wire/`` names one). Public, documented Pyro5 API (``Proxy``, ``Daemon``'s
documented hooks, ``config``, ``errors``, ``protocol``'s ``MSG_*``/``FLAGS_*`` constants,
``current_context``) is used directly.
"""

from __future__ import annotations

import selectors
import struct
from typing import Any

import Pyro5
from Pyro5 import client as _client
from Pyro5 import protocol as _protocol
from Pyro5 import serializers as _serializers
from Pyro5 import server as _server
from Pyro5 import socketutil as _socketutil
from Pyro5 import svr_threads as _svr_threads

PYRO5_VERSION: str = Pyro5.__version__
# Keep equal to the Pyro5 requirement in pyproject.toml; the test checks the installed version is in it.
TESTED_RANGE = (">=5.15", "<5.18")

# --- The wire header ---------------------------------------------------------------------------
# Relies on: ``protocol._header_format`` is the struct of Pyro5's 40-byte message header, fields in
# this order: tag b"PYRO", protocol version, message type, serializer id, flags, sequence number,
# data size, annotations size, 16-byte correlation id, reserved, magic number. taggerhub packs and
# parses it directly on the per-call paths instead of building SendingMessage/ReceivingMessage.
HEADER = struct.Struct(_protocol._header_format)
HEADER_TAG = b"PYRO"
PROTOCOL_VERSION: int = _protocol.PROTOCOL_VERSION
# Relies on: ``protocol._magic_number`` is the value of the header's last field.
MAGIC_NUMBER: int = _protocol._magic_number
NO_CORRELATION = b"\0" * 16
# Field positions in HEADER.unpack(...).
F_TAG, F_VERSION, F_TYPE, F_SERIALIZER, F_FLAGS, F_SEQ, F_DATA_SIZE, F_ANNOTATIONS_SIZE, F_CORRELATION = range(9)
F_MAGIC = 10

# Relies on: ``protocol.recv_stub`` (how Pyro5 reads every message it receives, on both sides)
# asks the connection for 6 bytes (tag and version), then the 34 other header bytes, then
# annotations and payload in one read. FastConnection's read-ahead buffer makes these three reads
# one system call; the server's GuardedConnection recognises the header's second part by its size.
HEADER_FIRST_READ = 6
HEADER_REST_READ = HEADER.size - HEADER_FIRST_READ  # 34
# The flags field (bytes 8..10 of the header) within the second read.
REST_FLAGS = slice(8 - HEADER_FIRST_READ, 10 - HEADER_FIRST_READ)


def flags_in_header_rest(rest: bytes) -> int:
    """The header's flags, from the 34 bytes of its second read."""
    return int.from_bytes(rest[REST_FLAGS], "big")


recv_message = _protocol.recv_stub  # (connection, accepted_msgtypes) -> ReceivingMessage; the 6/34/rest reads
SendingMessage = _protocol.SendingMessage
# Relies on: SendingMessage builds ``data`` as ``header + annotations + payload`` with ``+``, and
# takes ``len(payload)``; a codecs.Gather payload therefore stays a Gather (``__radd__``), unjoined.
ReceivingMessage = _protocol.ReceivingMessage

# --- Serializers -------------------------------------------------------------------------------
# Relies on: Pyro5 has no API to add a serializer; it looks them up by name and by id in these two
# module-level dicts each time (proxy handshake, daemon request), so entries put there are used.
SERIALIZERS: dict[str, Any] = _serializers.serializers
SERIALIZERS_BY_ID: dict[int, Any] = _serializers.serializers_by_id


def register_serializer(name: str, serializer: Any) -> None:
    """Make ``serializer`` Pyro5's serializer ``name`` and the one for its ``serializer_id``."""
    SERIALIZERS[name] = serializer
    SERIALIZERS_BY_ID[serializer.serializer_id] = serializer


def serializer_named(name: str) -> Any:
    """The serializer Pyro5 uses for ``name`` (KeyError if none)."""
    return SERIALIZERS[name]


def serializer_by_id(serializer_id: int) -> Any:
    """The serializer Pyro5 uses for the header's serializer id (KeyError if none)."""
    return SERIALIZERS_BY_ID[serializer_id]


# Base classes subclassed by wire.codecs. Relies on undocumented methods: msgpack's ``default``,
# ``object_hook`` and ``ext_hook`` (its packb/unpackb hooks), json's ``default``, every
# serializer's ``serializer_id``, ``dumps``/``dumpsCall``/``loads``/``loadsCall``.
SerializerBase = _serializers.SerializerBase
MsgpackSerializer = _serializers.MsgpackSerializer
JsonSerializer = _serializers.JsonSerializer
MarshalSerializer = _serializers.MarshalSerializer
SerpentSerializer = _serializers.SerpentSerializer

# --- Connections -------------------------------------------------------------------------------
# Relies on: ``socketutil.SocketConnection(sock, objectId=None, keep_open=False)`` keeps the socket
# in ``.sock`` and the object id in ``.objectId``, is a plain class (no __slots__), and is exactly
# the class Pyro5 makes for every plain connection (client and thread-pool server), so that
# connection.speed_up can swap an established one's ``__class__`` for a subclass.
SocketConnection = _socketutil.SocketConnection
# Relies on: keyword arguments ``connect``, ``timeout``, ``nodelay`` and ``sslContext``.
create_socket = _socketutil.create_socket

# --- The proxy -------------------------------------------------------------------------------------
# Relies on: Pyro5.client.Proxy calls these name-mangled methods on ``self``, so a subclass attribute
# of the same name replaces them: ``__pyroCreateConnection(replaceUri=False, connected_socket=None)
# -> bool`` connects and handshakes; ``__check_owner()`` raises unless the owner thread calls;
# ``__processMetadata(metadata)`` stores methods, attributes and one-way methods from the handshake.
PROXY_CREATE_CONNECTION = "_Proxy__pyroCreateConnection"
PROXY_CHECK_OWNER = "_Proxy__check_owner"
PROXY_PROCESS_METADATA = "_Proxy__processMetadata"
# Relies on: these ``_pyro*`` attributes exist on every proxy with these meanings: the connection or
# None, the last sequence number, the local socket address, the raw-response switch, and the
# remote object's method, attribute and one-way method names.
PROXY_ATTRIBUTES = ("_pyroConnection", "_pyroSeq", "_pyroLocalSocket", "_pyroRawWireResponse",
                    "_pyroMethods", "_pyroAttrs", "_pyroOneway")
# Relies on: undocumented proxy methods ``_pyroInvoke(methodname, vargs, kwargs, flags=0, objectId=None)``
# (every remote call goes through it) and ``_pyroGetMetadata(objectId=None, known_metadata=None)``.
PROXY_METHODS = ("_pyroInvoke", "_pyroGetMetadata")
# Relies on: ``_RemoteMethod(send, name, max_retries)`` retries ``send`` on lost connections.
RetryingRemoteMethod = _client._RemoteMethod


def override_proxy_hooks(cls: type, *, create_connection: Any = None, check_owner: Any = None) -> None:
    """Install ``cls``'s replacements of the proxy's name-mangled connect and owner-check methods."""
    if create_connection is not None:
        setattr(cls, PROXY_CREATE_CONNECTION, create_connection)
    if check_owner is not None:
        setattr(cls, PROXY_CHECK_OWNER, check_owner)


def pyro_create_connection(proxy: Any, replace_uri: bool = False, connected_socket: Any = None) -> bool:
    """Pyro5's own connect-and-handshake, for a replacement that falls back to it."""
    return getattr(_client.Proxy, PROXY_CREATE_CONNECTION)(proxy, replace_uri, connected_socket)


def process_metadata(proxy: Any, metadata: Any) -> None:
    """Store the remote object's metadata from a handshake response on the proxy, as Pyro5 does."""
    getattr(proxy, PROXY_PROCESS_METADATA)(metadata)


def set_proxy_seq(proxy: Any, seq: int) -> None:
    """Set the sequence number without Pyro5's ``Proxy.__setattr__`` checks (on the per-call path).

    Relies on: ``_pyroSeq`` is a plain instance attribute (``Proxy.__setattr__`` only stores it).
    """
    proxy.__dict__["_pyroSeq"] = seq


# --- The daemon (server/) ------------------------------------------------------------------------
Daemon = _server.Daemon
# Relies on: ``Daemon._handshake(conn, denied_reason=None) -> bool`` runs the connect handshake
# (HubDaemon overrides it) and looks an unknown serializer id up again, raising KeyError.
DAEMON_HANDSHAKE = "_handshake"
# Relies on: ``Daemon.transportServer`` is the socket server object made in ``Daemon.__init__``
# (a SocketServer_Threadpool with SERVERTYPE "thread"), whose class may be swapped for a subclass.
DAEMON_TRANSPORT_SERVER = "transportServer"
# Relies on: ``Daemon.objectsById`` maps object ids to registered objects.
DAEMON_OBJECTS = "objectsById"


def transport_server(daemon: Any) -> Any:
    """The daemon's socket server (``Daemon.transportServer``), whose class the hub swaps."""
    return getattr(daemon, DAEMON_TRANSPORT_SERVER)


def registered_objects(daemon: Any) -> dict[str, Any]:
    """The daemon's own table of registered objects by id (``Daemon.objectsById``; not a copy)."""
    return getattr(daemon, DAEMON_OBJECTS)


def send_exception_response(daemon: Any, conn: Any, seq: int, serializer_id: int, exc: BaseException,
                            tbinfo: Any) -> None:
    """Send ``exc`` as Pyro5's exception reply (``Daemon._sendExceptionResponse``)."""
    daemon._sendExceptionResponse(conn, seq, serializer_id, exc, tbinfo)


def client_disconnect(daemon: Any, conn: Any) -> None:
    """Pyro5's own per-connection cleanup, which then calls the ``clientDisconnect`` hook."""
    daemon._clientDisconnect(conn)


# Relies on: the thread-pool server keeps ``sock`` (listening socket), ``daemon``, ``pool``
# (``pool.process(job)``), ``shutting_down`` and ``_selector`` (registered on ``sock``), and calls
# ``events(eventsockets)`` in its loop; HubSocketServer overrides ``events`` to accept itself.
ThreadPoolServer = _svr_threads.SocketServer_Threadpool
# Relies on: a job has ``csock`` (the connection), ``caddr`` (the peer address), ``daemon`` and
# ``handleConnection() -> bool``; HubConnectionJob sets these without calling ``__init__``.
ConnectionJob = _svr_threads.ClientConnectionJob
NoFreeWorkersError = _svr_threads.NoFreeWorkersError


# Relies on: ``Daemon.handleRequest`` starts a one-way call as
# ``server._OnewayCallThread(method, vargs, kwargs, daemon, client_sock_addr).start()``, looking the
# class up in the module at each call, so that a replacement installed there is used.
ONEWAY_CALL_CLASS = "_OnewayCallThread"


def install_oneway_call_class(cls: type) -> None:
    """Make the daemon start one-way calls as ``cls(method, vargs, kwargs, daemon, client_sock).start()``."""
    setattr(_server, ONEWAY_CALL_CLASS, cls)


def oneway_call_class() -> type:
    """The class the daemon starts one-way calls with now."""
    return getattr(_server, ONEWAY_CALL_CLASS)


def server_selector(server: Any) -> selectors.BaseSelector:
    """The selector the thread-pool server waits on for new connections."""
    return server._selector


# Relies on: ``@expose`` marks methods with ``_pyroExposed = True``; registered objects get ``_pyroId``.
EXPOSED_FLAG = "_pyroExposed"
OBJECT_ID_ATTRIBUTE = "_pyroId"


def is_exposed(member: Any) -> bool:
    """Whether Pyro5's ``@expose`` marked this method or class."""
    return bool(getattr(member, EXPOSED_FLAG, False))


def object_id_of(obj: Any, default: str = "") -> str:
    """The id a daemon registered ``obj`` under, else ``default``."""
    return getattr(obj, OBJECT_ID_ATTRIBUTE, default)
