"""The object table: which served objects exist, who uses them, and when one may be freed.

The table records, for each served object, the sessions that have used it and
its children (the measurements on a tagger). An object is freed when no session
uses it any more and it has no living children, so a client that disconnects or
crashes frees what only it used, while a tagger shared with others stays open.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import Pyro5.api

from ..backend.adapter import Adapter
from ..errors import ObjectGone
from ..wire.pyro_compat import object_id_of
from .sessions import Session


@dataclass
class _Entry:
    adapter: Adapter
    owner: str  # session id of the creator
    users: set[str] = field(default_factory=set)
    children: set[str] = field(default_factory=set)
    parent: str | None = None
    holders: set[str] = field(default_factory=set)  # objects that read this one's virtual channels
    holds: set[str] = field(default_factory=set)  # virtual channels this one reads


class ObjectTable:
    """Served objects, their users and parents; frees what nobody uses any more."""

    def __init__(
        self,
        register: Callable[[Adapter], str],
        unregister: Callable[[Adapter], None],
        release: Callable[[Adapter], None],
    ):
        self._register = register
        self._unregister = unregister
        self._release = release
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}

    def add(self, adapter: Adapter, session: Session, parent: Adapter | None = None) -> Adapter:
        """Serve ``adapter``, owned and used by ``session``, as a child of ``parent``."""
        with self._lock:
            object_id = self._register(adapter)
            entry = _Entry(adapter=adapter, owner=session.id, users={session.id})
            adapter._bind(entry)
            if parent is not None:
                parent_id = object_id_of(parent)
                parent_entry = self._entries.get(parent_id)
                if parent_entry is not None:
                    entry.parent = parent_id
                    parent_entry.children.add(object_id)
            self._entries[object_id] = entry
        return adapter

    def get(self, object_id: str) -> Adapter:
        with self._lock:
            entry = self._entries.get(object_id)
        if entry is None:
            raise ObjectGone(f"object {object_id} does not exist on this server (freed, or the server restarted)")
        return entry.adapter

    def use(self, adapter: Adapter, session: Session) -> None:
        """Record that ``session`` uses ``adapter`` (so it stays alive while the session does)."""
        entry = adapter._entry
        if entry is not None and session.id in entry.users:
            return  # the common case, decided without the lock
        with self._lock:
            entry = adapter._entry
            if entry is None:
                raise ObjectGone(f"{type(adapter).__name__} object has been freed and can no longer be used")
            entry.users.add(session.id)

    def children_of(self, adapter: Adapter) -> list[Adapter]:
        with self._lock:
            entry = self._entries.get(object_id_of(adapter))
            return [self._entries[c].adapter for c in entry.children if c in self._entries] if entry else []

    def hold(self, holder: Adapter, held: list[Adapter]) -> None:
        """``holder`` reads ``held``'s channels: keep them while it lives, as its own proxies may be dropped."""
        with self._lock:
            holder_id = object_id_of(holder)
            holder_entry = self._entries.get(holder_id)
            for adapter in held:
                held_id = object_id_of(adapter)
                entry = self._entries.get(held_id)
                if holder_entry is not None and entry is not None and held_id != holder_id:
                    entry.holders.add(holder_id)
                    holder_entry.holds.add(held_id)

    def is_used_by(self, adapter: Adapter, session: Session) -> bool:
        entry = adapter._entry
        return entry is not None and session.id in entry.users

    def owner_of(self, adapter: Adapter) -> str | None:
        with self._lock:
            entry = self._entries.get(object_id_of(adapter))
            return entry.owner if entry else None

    def owned_count(self, session: Session) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.owner == session.id)

    def ids_owned_by(self, session_ids: set[str]) -> list[str]:
        """Ids of the objects created by any of ``session_ids``."""
        with self._lock:
            return [oid for oid, e in self._entries.items() if e.owner in session_ids]

    def counts_by_type(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for entry in self._entries.values():
                name = type(entry.adapter).__name__
                counts[name] = counts.get(name, 0) + 1
            return counts

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def drop_session(self, session: Session) -> int:
        """Forget ``session`` everywhere; free what nobody else uses. Return how many objects were freed."""
        with self._lock:
            touched = [oid for oid, e in self._entries.items() if session.id in e.users]
            for oid in touched:
                self._entries[oid].users.discard(session.id)
            return sum(self._collect(oid) for oid in touched)

    def release(self, adapter: Adapter, session: Session, force: bool = False, children: bool = True) -> int:
        """``session`` is done with ``adapter`` and (``children``) what it created under it; ``force`` frees it
        for everyone."""
        with self._lock:
            object_id = object_id_of(adapter)
            entry = self._entries.get(object_id)
            if entry is None:
                return 0
            if force:
                return self._free_tree(object_id)
            freed = 0
            for child_id in list(entry.children) if children else []:
                child = self._entries.get(child_id)
                if child is not None and child.owner == session.id:
                    child.users.discard(session.id)
                    freed += self._collect(child_id)
            entry.users.discard(session.id)
            return freed + self._collect(object_id)

    def end_use(self, session: Session, *objects: Any) -> int:
        """This client is done with ``objects`` (its last proxies were dropped); return how many were freed.

        An object is freed only when no other client uses it and no live object needs it (a
        measurement keeps the virtual channels it reads); a tagger's device stays open for others.
        Objects already freed are skipped, so a late release is harmless.
        """
        freed = 0
        for ref in objects:
            if not isinstance(ref, Pyro5.api.Proxy | Pyro5.api.URI):
                raise TypeError(f"hub_release() takes proxies of server objects, got {type(ref).__name__}")
            with self._lock:
                entry = self._entries.get(ref._pyroUri.object if isinstance(ref, Pyro5.api.Proxy) else ref.object)
                if entry is not None:
                    freed += self.release(entry.adapter, session, children=False)
        return freed

    def free_all(self) -> int:
        """Free everything (server shutdown): children first, then their parents."""
        with self._lock:
            roots = [oid for oid, e in self._entries.items() if e.parent is None]
            return sum(self._free_tree(oid) for oid in roots)

    def _collect(self, object_id: str) -> int:
        entry = self._entries.get(object_id)
        if entry is None or entry.users or entry.children or entry.holders:
            return 0
        return self._free_one(object_id)

    def _free_tree(self, object_id: str) -> int:
        entry = self._entries.get(object_id)
        if entry is None:
            return 0
        freed = sum(self._free_tree(child) for child in list(entry.children))
        if object_id not in self._entries:  # unused, it was collected with its last child
            return freed
        entry.children.clear()
        entry.users.clear()
        entry.holders.clear()
        return freed + self._free_one(object_id)

    def _free_one(self, object_id: str) -> int:
        entry = self._entries.pop(object_id)
        entry.adapter._unbind()
        self._unregister(entry.adapter)
        try:
            self._release(entry.adapter)
        finally:
            entry.adapter._drop_object()
        freed = 0
        for held_id in entry.holds:
            held = self._entries.get(held_id)
            if held is not None:
                held.holders.discard(object_id)
                freed += self._collect(held_id)
        if entry.parent is not None:
            parent = self._entries.get(entry.parent)
            if parent is not None:
                parent.children.discard(object_id)
                return freed + 1 + self._collect(entry.parent)
        return freed + 1
