"""Tell the server when this client dropped the last proxy of an object a call handed it.

In one process the vendor library frees a measurement when the script drops it (``c`` rebound
in a loop); through the server, the object would stay until the tagger is freed or the client
disconnects, and such a loop runs into ``limits.max_measurements``. So every proxy is counted
per object id; when one is garbage-collected its weakref callback appends the id to
``_pending`` -- and nothing else: it may run in any thread, at any moment, even while that
thread holds one of the client's locks, so it neither takes a lock nor touches the network
(``deque.append`` is atomic). The next call of any proxy (:func:`flush`) then sends
``hub_release`` for the ids no live proxy in this process refers to any more, and only for
objects a call handed out (a ``Proxy(uri)`` made by hand never releases). The server ends only
this client's use: other clients, and objects that read a virtual channel, keep it alive.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import Pyro5.client
import Pyro5.core

from ..wire.addresses import LIBRARY_OBJECT_ID

log = logging.getLogger("taggerhub.client")


@dataclass(frozen=True)
class Origin:
    """Where and as whom to release one object: the settings of the proxy a call handed out."""

    uri: Pyro5.core.URI  # the object's
    proxy_class: type  # taggerhub's Proxy (passed in: this module sits below it)
    handshake: dict[str, Any]
    ssl_context: Any
    serializer: str
    timeout: float | None

    @property
    def key(self) -> Hashable:
        """One releasing connection per server, user and TLS context."""
        return self.uri.location, self.handshake.get("token", ""), id(self.ssl_context)

    @classmethod
    def of(cls, proxy: Any) -> Origin:
        return cls(proxy._pyroUri, type(proxy), dict(proxy._pyroHandshake), proxy._taggerhub_ssl,
                   proxy._pyroSerializer, proxy._pyroTimeout)


_pending: deque[str] = deque()  # ids of objects whose proxy was collected; appended by weakref callbacks only
_lock = threading.Lock()  # guards _live and _origins; never taken by a weakref callback
_live: dict[str, list[weakref.ref]] = {}  # object id -> weakrefs of this process's proxies of it
_origins: dict[str, Origin] = {}  # object id -> where to release it (only objects a call handed out)
_unsupported: set[Hashable] = set()  # origins whose server has no hub_release (the vendor's)
_releasers: dict[Hashable, Any] = {}  # origin key -> the library proxy releases go through


def _collected(object_id: str) -> Callable[[weakref.ref], None]:
    append = _pending.append

    def on_collected(_ref: weakref.ref) -> None:
        append(object_id)  # atomic; anything more could deadlock or reenter the client

    return on_collected


def track(proxy: Any) -> None:
    """Count ``proxy`` as a live local proxy of its object (every copy counts, however made)."""
    object_id = proxy._pyroUri.object
    if object_id == LIBRARY_OBJECT_ID:
        return  # the library is never released
    ref = weakref.ref(proxy, _collected(object_id))
    with _lock:
        _live.setdefault(object_id, []).append(ref)


def handed_out(proxy: Any) -> None:
    """A call handed out ``proxy``'s object: release it on the server once its last local proxy is gone."""
    origin = Origin.of(proxy)
    with _lock:
        _origins[origin.uri.object] = origin


def pending() -> bool:
    return bool(_pending)


def flush() -> None:
    """Release the objects no live local proxy refers to any more, one call per server and user."""
    batches: dict[Hashable, list[Origin]] = {}
    while True:
        try:
            object_id = _pending.popleft()
        except IndexError:
            break
        with _lock:
            alive = [r for r in _live.get(object_id, ()) if r() is not None]
            if alive:
                _live[object_id] = alive
                continue
            _live.pop(object_id, None)
            origin = _origins.pop(object_id, None)
        if origin is not None and origin.key not in _unsupported:
            batches.setdefault(origin.key, []).append(origin)
    for key, origins in batches.items():
        releaser = _releaser(origins[0])
        try:
            releaser._pyroInvoke("hub_release", tuple(Pyro5.client.Proxy(o.uri) for o in origins), {})
        except AttributeError:  # a server without hub_release: its objects live as long as the session
            _unsupported.add(key)
        except Exception as exc:  # the next call reports a broken server; a release is never worth failing one
            log.debug("releasing %d dropped objects failed: %s", len(origins), exc)
        finally:
            releaser._pyroRelease()  # its connection must not keep the session open once the script's are gone


def _releaser(origin: Origin) -> Any:
    """The library proxy that releases ``origin``'s objects: its own connection, same client and token."""
    releaser = _releasers.get(origin.key)
    if releaser is None:
        uri = Pyro5.core.URI(origin.uri)
        uri.object = LIBRARY_OBJECT_ID
        releaser = origin.proxy_class(uri, serializer=origin.serializer, ssl_context=origin.ssl_context)
        releaser._pyroHandshake = dict(origin.handshake)
        releaser._pyroTimeout = origin.timeout
        _releasers[origin.key] = releaser
    return releaser


def live_count(object_id: str) -> int:
    """How many live local proxies refer to ``object_id`` (for tests and diagnostics)."""
    with _lock:
        return sum(1 for r in _live.get(object_id, ()) if r() is not None)


def _forget_after_fork() -> None:
    """The child is another client (a new session): the parent's objects are not its to release."""
    global _lock
    _lock = threading.Lock()
    _pending.clear()
    _origins.clear()
    _releasers.clear()  # their connections are the parent's


os.register_at_fork(after_in_child=_forget_after_fork)
