"""Connect to a taggerhub (or TimeTaggerRPC) server: ``TT = client.createProxy()``.

Same shape as the vendor's ``TimeTaggerRPC.client``, plus:

- proxies are safe to share between threads (calls on one proxy are
  serialised by a lock; ``_pyroClaimOwnership()`` stays harmless);
- NumPy arrays travel as raw bytes (msgpack);
- every proxy a call returns inherits the connection settings (token, TLS);
- a lost connection raises :class:`~taggerhub.errors.ServerUnavailable`, and
  read-only calls (``get*``, ``is*``) reconnect once by themselves.
"""

from __future__ import annotations

import enum
import os
import threading
import uuid
from typing import Any

import Pyro5.api
import Pyro5.client
import Pyro5.core
import Pyro5.errors
from Pyro5 import config as pyro_config

from . import transport
from .errors import ObjectGone, ServerUnavailable

# Names this process to the server, so that all its proxies (one connection each) form one session.
_client_id = uuid.uuid4().hex


def _new_client_id_after_fork() -> None:
    global _client_id
    _client_id = uuid.uuid4().hex


os.register_at_fork(after_in_child=_new_client_id_after_fork)

SAFE_TO_RETRY_PREFIXES = ("get", "is", "enum_definitions", "hub_status", "hub_metrics")


class Proxy(Pyro5.client.Proxy):
    """A Pyro5 proxy that any thread may use, carrying taggerhub's connection settings."""

    def __init__(self, uri: Any, token: str | None = None, serializer: str = "msgpack"):
        super().__init__(uri)
        self._pyroSerializer = serializer
        self._pyroHandshake = {"client": _client_id, "token": token or ""}
        object.__setattr__(self, "_taggerhub_lock", threading.RLock())

    def __setstate__(self, state: Any) -> None:
        super().__setstate__(state)
        object.__setattr__(self, "_taggerhub_lock", threading.RLock())

    def __getattr__(self, name: str) -> Any:
        if name == "_taggerhub_lock":
            raise AttributeError(name)
        return super().__getattr__(name)

    def _Proxy__check_owner(self) -> None:
        """Any thread may use this proxy; calls are serialised by ``_taggerhub_lock``."""

    def _pyroClaimOwnership(self) -> None:
        """Kept for code written for TimeTaggerRPC; not needed with taggerhub's proxies."""

    def _adopt(self, value: Any) -> Any:
        """Turn proxies in a result into taggerhub proxies with this proxy's settings."""
        if isinstance(value, Pyro5.client.Proxy) and not isinstance(value, Proxy):
            adopted = Proxy(self._reached_as(value._pyroUri), serializer=self._pyroSerializer)
            adopted._pyroHandshake = self._pyroHandshake
            adopted._pyroMethods = set(value._pyroMethods)
            adopted._pyroAttrs = set(value._pyroAttrs)
            adopted._pyroOneway = set(value._pyroOneway)
            adopted._pyroTimeout = self._pyroTimeout
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

    @staticmethod
    def _plain(value: Any) -> Any:
        """Send proxies as plain Pyro5 proxies, which every server can deserialize."""
        if isinstance(value, Proxy):
            return Pyro5.client.Proxy(value._pyroUri)
        if isinstance(value, list | tuple) and any(isinstance(v, Proxy) for v in value):
            return type(value)(Proxy._plain(v) for v in value)
        return value

    def _pyroInvoke(self, methodname: str, vargs: Any, kwargs: Any, flags: int = 0, objectId: Any = None) -> Any:
        if methodname != "<batch>":
            vargs = tuple(self._plain(v) for v in vargs)
            kwargs = {k: self._plain(v) for k, v in (kwargs or {}).items()}
        with self._taggerhub_lock:
            try:
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
                              | Pyro5.errors.ProtocolError):
                    raise
                raise ServerUnavailable(f"taggerhub server at {self._pyroUri.location} unavailable: {exc}") from exc
        return self._adopt(result)

    def _retry(self, methodname: str, vargs: Any, kwargs: Any, flags: int, objectId: Any, first: Exception) -> Any:
        try:
            self._pyroReconnect(tries=1)
            return super()._pyroInvoke(methodname, vargs, kwargs, flags, objectId)
        except Pyro5.errors.CommunicationError as exc:
            raise ServerUnavailable(
                f"connection to {self._pyroUri.location} lost ({first}); reconnecting failed: {exc}"
            ) from exc


class LibraryProxy(Proxy):
    """The proxy of the served library, with the backend's enums as attributes (as TimeTaggerRPC's)."""

    def __init__(self, uri: Any, token: str | None = None, serializer: str = "msgpack"):
        super().__init__(uri, token=token, serializer=serializer)
        for name, (enum_type, members) in self.enum_definitions().items():
            self.__dict__[name] = getattr(enum, enum_type)(name, [tuple(m) for m in members])


def createProxy(
    host: str = "localhost",
    port: int = 23000,
    token: str | None = None,
    _objectId: str = "TimeTaggerRPC",
) -> LibraryProxy:
    """Return a proxy of the remote Time Tagger library.

    ``token`` defaults to the ``TAGGERHUB_TOKEN`` environment variable.
    """
    transport.install()
    pyro_config.SOCK_NODELAY = True
    token = token if token is not None else os.environ.get("TAGGERHUB_TOKEN") or None
    return LibraryProxy(f"PYRO:{_objectId}@{host}:{port}", token=token)
