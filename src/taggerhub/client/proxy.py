"""Connect to a taggerhub (or TimeTaggerRPC) server: ``TT = client.createProxy()``.

Same shape as the vendor's ``TimeTaggerRPC.client``, plus:

- proxies are safe to share between threads (calls on one proxy are
  serialised by a lock; ``_pyroClaimOwnership()`` stays harmless);
- NumPy arrays travel as raw bytes (msgpack);
- every proxy a call returns inherits the connection settings (token, TLS);
- a lost connection raises :class:`~taggerhub.errors.ServerUnavailable`, and
  read-only calls (``get*``, ``is*``) reconnect once by themselves.

Arguments left out of :func:`createProxy` come from the environment (:mod:`.env`). Pyro5's
private proxy internals are reached through :mod:`taggerhub.wire.pyro_compat`.
"""

from __future__ import annotations

import contextlib
import enum
import os
import ssl
import threading
import types
import uuid
from typing import Any

import Pyro5.client
import Pyro5.core
import Pyro5.errors
from Pyro5 import config as pyro_config
from Pyro5 import core, protocol
from Pyro5.callcontext import current_context

from ..access.tls import client_context
from ..errors import ObjectGone, ServerUnavailable
from ..wire import codecs, pyro_compat
from ..wire.addresses import LIBRARY_OBJECT_ID, library_uri
from ..wire.connection import FastConnection, speed_up
from . import env, explain, release, replay, vendor_fallback

codecs.install()

# Names this process to the server, so that all its proxies (one connection each) form one session.
_client_id = uuid.uuid4().hex


def _new_client_id_after_fork() -> None:
    global _client_id
    _client_id = uuid.uuid4().hex


os.register_at_fork(after_in_child=_new_client_id_after_fork)


def _correlation_bytes() -> bytes:
    """This thread's correlation id, made once (spares the server generating one per request)."""
    correlation = current_context.correlation_id
    if correlation is None:
        correlation = current_context.correlation_id = uuid.uuid4()
    return correlation.bytes


SAFE_TO_RETRY_PREFIXES = ("get", "is", "enum_definitions", "hub_status", "hub_metrics")


class RemoteMethod:
    """A remote method of one proxy; calls go straight to the proxy's invoke path.

    Unlike Pyro5's (``pyro_compat.RetryingRemoteMethod``), made per lookup, it is made once per
    proxy and name, and honours ``_pyroMaxRetries`` like Pyro5's.
    """

    __slots__ = ("name", "proxy")

    def __init__(self, proxy: Proxy, name: str):
        self.proxy = proxy
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if release._pending:
            release.flush()  # objects whose last proxy was dropped since the last call (not in _pyroInvoke:
            # the releasing proxy's own hub_release goes straight there)
        proxy = self.proxy
        if not proxy._pyroMaxRetries:
            return proxy._pyroInvoke(self.name, args, kwargs)
        return pyro_compat.RetryingRemoteMethod(proxy._pyroInvoke, self.name, proxy._pyroMaxRetries)(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<remote method {self.name} of {self.proxy._pyroUri}>"


class Proxy(Pyro5.client.Proxy):
    """A Pyro5 proxy that any thread may use, carrying taggerhub's connection settings."""

    def __init__(self, uri: Any, token: str | None = None, serializer: str = "taggerhub",
                 ssl_context: ssl.SSLContext | None = None):
        super().__init__(uri)
        self._pyroSerializer = serializer
        self._pyroHandshake = {"client": _client_id, "token": token or ""}
        object.__setattr__(self, "_taggerhub_lock", threading.RLock())
        object.__setattr__(self, "_taggerhub_ssl", ssl_context)
        release.track(self)  # every copy counts: the object is released after the last one is dropped

    def __setstate__(self, state: Any) -> None:
        super().__setstate__(state)
        object.__setattr__(self, "_taggerhub_lock", threading.RLock())
        object.__setattr__(self, "_taggerhub_ssl", None)
        release.track(self)

    def __getattr__(self, name: str) -> Any:
        if name in ("_taggerhub_lock", "_taggerhub_ssl", "_taggerhub_serial"):
            raise AttributeError(name)
        if name in self._pyroMethods and name not in self._pyroAttrs:
            # Remember the method on the instance: later lookups skip __getattr__ altogether.
            method = RemoteMethod(self, name)
            object.__setattr__(self, name, method)
            return method
        return super().__getattr__(name)

    def _create_connection(self, replaceUri: bool = False, connected_socket: Any = None) -> bool:
        """Connect with this proxy's own TLS context (Pyro5's SSL settings are process-wide).

        Replaces Pyro5's name-mangled ``__pyroCreateConnection`` (installed below the class, explained).
        """
        context = self._taggerhub_ssl
        if context is None or connected_socket is not None or self._pyroConnection is not None:
            return pyro_compat.pyro_create_connection(self, replaceUri, connected_socket)
        uri = core.resolve(self._pyroUri)
        location = uri.sockname or (uri.host, uri.port)
        try:
            sock = pyro_compat.create_socket(connect=location, timeout=self._pyroTimeout,
                                            nodelay=pyro_config.SOCK_NODELAY, sslContext=context)
        except (OSError, ssl.SSLError) as exc:
            raise ServerUnavailable(f"cannot connect to {uri.location} over TLS: {exc}") from exc
        conn = FastConnection(sock, uri.object)
        try:
            serializer = pyro_compat.serializer_named(self._pyroSerializer or pyro_config.SERIALIZER)
            data = serializer.dumps({"handshake": self._pyroHandshake, "object": uri.object})
            conn.send(pyro_compat.SendingMessage(protocol.MSG_CONNECT, 0, self._pyroSeq, serializer.serializer_id,
                                                 data).data)
            reply = pyro_compat.recv_message(conn, [protocol.MSG_CONNECTOK, protocol.MSG_CONNECTFAIL])
            response = pyro_compat.serializer_by_id(reply.serializer_id).loads(reply.data) if reply.data else "?"
        except Exception as exc:
            conn.close()
            if isinstance(exc, Pyro5.errors.CommunicationError):
                raise
            raise Pyro5.errors.CommunicationError(f"cannot connect to {uri.location}: {exc}") from exc
        if reply.type == protocol.MSG_CONNECTFAIL:
            conn.close()
            raise Pyro5.errors.CommunicationError(f"connection to {uri.location} rejected: {response}")
        pyro_compat.process_metadata(self, response["meta"])
        self._pyroConnection = conn
        self._pyroLocalSocket = conn.sock.getsockname()
        if replaceUri:
            self._pyroUri = uri
        self._pyroValidateHandshake(response["handshake"])
        if not self._pyroMethods and not self._pyroAttrs:
            self._pyroGetMetadata(uri.object)
        return True

    def _any_thread_is_owner(self) -> None:
        """Any thread may use this proxy; calls are serialised by ``_taggerhub_lock``.

        Replaces Pyro5's name-mangled ``__check_owner`` (installed below the class).
        """

    def _pyroValidateHandshake(self, response: Any) -> None:
        speed_up(self._pyroConnection)

    def _pyroClaimOwnership(self) -> None:
        """Kept for code written for TimeTaggerRPC; not needed with taggerhub's proxies."""

    def _adopt(self, value: Any) -> Any:
        """Turn proxies in a result into taggerhub proxies with this proxy's settings."""
        if isinstance(value, Pyro5.client.Proxy) and not isinstance(value, Proxy):
            adopted = Proxy(self._reached_as(value._pyroUri), serializer=self._pyroSerializer,
                            ssl_context=self._taggerhub_ssl)
            adopted._pyroHandshake = self._pyroHandshake
            adopted._pyroMethods = set(value._pyroMethods)
            adopted._pyroAttrs = set(value._pyroAttrs)
            adopted._pyroOneway = set(value._pyroOneway)
            adopted._pyroTimeout = self._pyroTimeout
            release.handed_out(adopted)
            # Connect now, while this proxy's connection still holds the session open: a library
            # proxy dropped right after `createTimeTagger()` must not take the new tagger with it.
            with contextlib.suppress(Pyro5.errors.CommunicationError):
                adopted._pyroBind()
            return adopted
        if isinstance(value, list | tuple) and any(isinstance(v, Pyro5.client.Proxy) for v in value):
            return type(value)(self._adopt(v) for v in value)
        return value

    def _reached_as(self, uri: Pyro5.core.URI) -> Pyro5.core.URI:
        """Point a returned object's URI at the address this proxy reaches the server by.

        The server names itself as it listens (``localhost:23000``, ``0.0.0.0:23000``),
        which is wrong on the far side of an SSH forward, a NAT or a container port
        map; every object it returns lives on the server this proxy already reaches.
        """
        mine = self._pyroUri
        if uri.protocol != "PYRO" or uri.sockname or mine.sockname or uri.location == mine.location:
            return uri
        moved = Pyro5.core.URI(uri)
        moved.host, moved.port = mine.host, mine.port
        return moved

    def _invoke_direct(self, methodname: str, vargs: Any, kwargs: Any) -> Any:
        """One request/response on the established connection, for the common plain call."""
        conn = self._pyroConnection
        serializer = pyro_compat.serializer_named(self._pyroSerializer)
        serializer_id = serializer.serializer_id
        data = serializer.dumpsCall(conn.objectId, methodname, vargs, kwargs)
        seq = (self._pyroSeq + 1) & 0xFFFF
        pyro_compat.set_proxy_seq(self, seq)
        try:
            conn.send_message(protocol.MSG_INVOKE, 0, seq, serializer_id, data, _correlation_bytes())
            del data
            header, fields, payload = conn.read_message()
            msgtype, reply_serializer, flags, reply_seq, annotations_size = (
                fields[pyro_compat.F_TYPE], fields[pyro_compat.F_SERIALIZER], fields[pyro_compat.F_FLAGS],
                fields[pyro_compat.F_SEQ], fields[pyro_compat.F_ANNOTATIONS_SIZE])
            if msgtype != protocol.MSG_RESULT:
                raise Pyro5.errors.ProtocolError(f"invalid msg type {msgtype:d} received (expected: result)")
            if reply_seq != seq:
                raise Pyro5.errors.ProtocolError(f"reply sequence out of sync, got {reply_seq} expected {seq}")
            if reply_serializer != serializer_id:
                raise Pyro5.errors.SerializeError(f"invalid serializer in response: {reply_serializer}")
            if flags & protocol.FLAGS_ITEMSTREAMRESULT:
                raise Pyro5.errors.ProtocolError("streamed results are not used by taggerhub")
        except (Pyro5.errors.CommunicationError, KeyboardInterrupt):
            self._pyroRelease()  # the connection's state is unknown: never reuse it
            raise
        if annotations_size:  # rare: let Pyro5 split annotations from the payload
            reply = pyro_compat.ReceivingMessage(header, payload)
            current_context.response_annotations, payload = reply.annotations, reply.data
        elif current_context.response_annotations:
            current_context.response_annotations = {}
        result = serializer.loads(payload)
        if flags & protocol.FLAGS_EXCEPTION:
            raise result
        return result

    def _pyroInvoke(self, methodname: str, vargs: Any, kwargs: Any, flags: int = 0, objectId: Any = None) -> Any:
        if methodname != "<batch>":
            if vargs and any(isinstance(v, Proxy | list | tuple) for v in vargs):
                vargs = tuple(_plain(v) for v in vargs)
            if kwargs:
                kwargs = {k: _plain(v) for k, v in kwargs.items()}
        with self._taggerhub_lock:
            try:
                if (self._pyroConnection is not None and not flags and objectId is None
                        and methodname not in self._pyroOneway and not self._pyroRawWireResponse
                        and not current_context.annotations and self._pyroSerializer in pyro_compat.SERIALIZERS):
                    result = self._invoke_direct(methodname, vargs, kwargs)
                else:
                    _correlation_bytes()
                    result = super()._pyroInvoke(methodname, vargs, kwargs, flags, objectId)
            except Pyro5.errors.ConnectionClosedError as exc:
                if not methodname.startswith(SAFE_TO_RETRY_PREFIXES):
                    raise ServerUnavailable(
                        f"connection to {self._pyroUri.location} lost during {methodname}(): {exc}; "
                        "the call may or may not have run, the next call reconnects"
                    ) from exc
                result = self._retry(methodname, vargs, kwargs, flags, objectId, exc)
            except (Pyro5.errors.CommunicationError, Pyro5.errors.DaemonError) as exc:
                if "unknown object" in str(exc):
                    raise ObjectGone(
                        f"object {self._pyroUri.object} no longer exists on the server "
                        "(it was freed, or the server restarted)"
                    ) from exc
                if isinstance(exc, Pyro5.errors.DaemonError | ServerUnavailable | Pyro5.errors.SerializeError
                              | Pyro5.errors.ProtocolError | explain.ConnectionRejected):
                    raise
                raise ServerUnavailable(f"taggerhub server at {self._pyroUri.location} unavailable: {exc}") from exc
        return self._adopt(result)

    def _retry(self, methodname: str, vargs: Any, kwargs: Any, flags: int, objectId: Any, first: Exception) -> Any:
        try:
            self._pyroRelease()
            return super()._pyroInvoke(methodname, vargs, kwargs, flags, objectId)  # connects anew
        except Pyro5.errors.CommunicationError as exc:
            if "unknown object" in str(exc):
                raise ObjectGone(
                    f"object {self._pyroUri.object} no longer exists on the server (the server restarted)"
                ) from exc
            if isinstance(exc, explain.ConnectionRejected):
                raise  # reachable, and it says why it refused (a rotated token, the connection limit)
            raise ServerUnavailable(
                f"connection to {self._pyroUri.location} lost ({first}); reconnecting failed: {exc}"
            ) from exc


pyro_compat.override_proxy_hooks(Proxy, create_connection=explain.create_connection_explained,
                                 check_owner=Proxy._any_thread_is_owner)


def _plain(value: Any) -> Any:
    """Send proxies as plain Pyro5 proxies, which every server can deserialize."""
    if isinstance(value, Proxy):
        return Pyro5.client.Proxy(value._pyroUri)
    if isinstance(value, list | tuple) and any(isinstance(v, Proxy) for v in value):
        return type(value)(_plain(v) for v in value)
    return value


class LibraryProxy(Proxy, types.ModuleType):
    """The served library, with the backend's enums as attributes (as TimeTaggerRPC's). A module, as the vendor's
    is: numba compiles ``TimeTagger.TagType.TimeTag`` in a jitted ``process()`` only if ``TimeTagger`` is one."""

    def __init__(self, uri: Any, token: str | None = None, serializer: str = "taggerhub",
                 ssl_context: ssl.SSLContext | None = None):
        types.ModuleType.__init__(self, "TimeTagger")
        super().__init__(uri, token=token, serializer=serializer, ssl_context=ssl_context)
        vendor_fallback.bind(self)
        for name, (enum_type, members) in self.enum_definitions().items():
            self.__dict__[name] = getattr(enum, enum_type)(name, [tuple(m) for m in members])
        object.__setattr__(self, "_taggerhub_serial", "")

    def __getattr__(self, name: str) -> Any:
        local = replay.local_attribute(self, name, RemoteMethod)  # runs here: CustomMeasurement, FileReader, replays
        if local is not None:
            self.__dict__[name] = local
            return local
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_"):
                raise
            constants = self._constants()
            if name in constants:  # TT.CHANNEL_UNUSED, TT.TT_CHANNEL_FALLING_EDGES, as in the vendor module
                return constants[name]
            raise

    def _constants(self) -> dict[str, Any]:
        """The library's constants, asked for once, when a script first reads one."""
        constants = self.__dict__.get("_taggerhub_constants")
        if constants is None:
            try:
                constants = dict(self._pyroInvoke("constant_definitions", (), {}))
            except AttributeError:  # a server without the call (the vendor's): no constants
                constants = {}
            self.__dict__["_taggerhub_constants"] = constants
        return constants

    def _taggerhub_new_connection(self) -> Proxy:
        """Another proxy of the library on a connection of its own (same session, token and TLS)."""
        other = Proxy(self._pyroUri, serializer=self._pyroSerializer, ssl_context=self._taggerhub_ssl)
        other._pyroHandshake = self._pyroHandshake
        other._pyroTimeout = self._pyroTimeout
        return other

    def createTimeTagger(self, *args: Any, **kwargs: Any) -> Any:
        """Open (or share) a tagger; with no serial, the one this proxy was resolved for by name, if any."""
        if not args and not kwargs.get("serial") and getattr(self, "_taggerhub_serial", ""):
            kwargs = {**kwargs, "serial": self._taggerhub_serial}
        return self._pyroInvoke("createTimeTagger", args, kwargs)


def createProxy(
    host: str = "localhost",
    port: int = 23000,
    token: str | None = None,
    _objectId: str = LIBRARY_OBJECT_ID,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    name: str | None = None,
    ns_host: str | None = None,
    ns_port: int | None = None,
) -> LibraryProxy:
    """Return a proxy of the remote Time Tagger library.

    ``token`` defaults to the ``TAGGERHUB_TOKEN`` environment variable. With
    ``tls_ca`` (default ``TAGGERHUB_CLIENT_TLS_CA``) the connection uses TLS and the
    server must present a certificate signed by that CA for ``host``;
    ``tls_cert``/``tls_key`` (``TAGGERHUB_CLIENT_TLS_CERT``/``_KEY``) add a client
    certificate for mutual TLS. ``ssl_context`` overrides all three. With ``name``, the
    server is looked up in the name server at ``ns_host`` (default ``TAGGERHUB_NS``, else
    ``localhost:9090``). The environment is read in :mod:`taggerhub.client.env`.
    """
    codecs.install()
    pyro_config.SOCK_NODELAY = True
    token = env.token(token)
    if ssl_context is None:
        ca, cert, key = env.tls_files(tls_ca, tls_cert, tls_key)
        if ca:
            explain.check_client_certificate(cert, name or f"{host}:{port}")
            ssl_context = client_context(ca, cert, key)
    if name:
        from ..wire.naming import resolve

        entry = resolve(name, env.ns_address(ns_host), ns_port)
        proxy = LibraryProxy(entry.uri, token=token, ssl_context=ssl_context)
        object.__setattr__(proxy, "_taggerhub_serial", entry.serial)
        return proxy
    return LibraryProxy(library_uri(host, port, _objectId), token=token, ssl_context=ssl_context)
