"""``SynchronizedMeasurements``: start, stop and clear several measurements on exactly the same tags.

All measurements run on the engine thread and see the same chunks, so acting
on them while holding the engine lock (between two chunks) is enough to make
them cover identical tags. ``getTagger()`` returns a proxy tagger: measurements
built on it join the group and do not start by themselves.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any

from .tagger import TimeTaggerBase

if TYPE_CHECKING:
    from .iterators import IteratorBase


class SynchronizedTagger(TimeTaggerBase):
    """Proxy tagger of a SynchronizedMeasurements: everything else goes to the real tagger.

    Public name (Pyro refuses to expose classes named with an underscore) but not a member of
    ``taggerhub.sim``, so reflection over the module does not mistake it for a device class.
    """

    _autostart = False

    def __init__(self, tagger: TimeTaggerBase, group: SynchronizedMeasurements):  # no super(): a view, not a device
        self._real = tagger
        self._group = weakref.ref(group)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def _attach(self, iterator: IteratorBase) -> None:
        self._real._attach(iterator)
        group = self._group()
        if group is not None:
            group._members.append(weakref.ref(iterator))


class SynchronizedMeasurements:
    """Control a set of measurements together so they operate on the same time tags."""

    def __init__(self, tagger: TimeTaggerBase):
        if not isinstance(tagger, TimeTaggerBase):
            raise TypeError(f"tagger must be a TimeTagger object, got {type(tagger).__name__}")
        self._tagger = tagger._real if isinstance(tagger, SynchronizedTagger) else tagger
        self._members: list[weakref.ref[IteratorBase]] = []
        self._proxy = SynchronizedTagger(self._tagger, self)

    def _alive(self) -> list[IteratorBase]:
        members = [m for m in (r() for r in self._members) if m is not None and m._alive]
        self._members = [weakref.ref(m) for m in members]
        return members

    def registerMeasurement(self, measurement: IteratorBase) -> None:
        """Add a measurement to the group (it keeps its current running state until the next group action)."""
        if measurement._tagger is not self._tagger and getattr(measurement._tagger, "_real", None) is not self._tagger:
            raise ValueError("the measurement belongs to another Time Tagger")
        if all(r() is not measurement for r in self._members):
            self._members.append(weakref.ref(measurement))

    def unregisterMeasurement(self, measurement: IteratorBase) -> None:
        """Remove a measurement from the group."""
        self._members = [r for r in self._members if r() is not None and r() is not measurement]

    def getTagger(self) -> TimeTaggerBase:
        """A proxy tagger: measurements created with it join this group and do not autostart."""
        return self._proxy

    def start(self) -> None:
        """Start every measurement on the same tag."""
        with self._tagger._engine._lock:
            for m in self._alive():
                m.start()

    def startFor(self, capture_duration: int, clear: bool = True) -> None:
        """Acquire for ``capture_duration`` ps on every measurement, starting on the same tag."""
        with self._tagger._engine._lock:
            for m in self._alive():
                m.startFor(capture_duration, clear)

    def stop(self) -> None:
        """Stop every measurement after the same tag."""
        with self._tagger._engine._lock:
            for m in self._alive():
                m.stop()

    def clear(self) -> None:
        """Clear every measurement at the same point of the stream."""
        with self._tagger._engine._lock:
            for m in self._alive():
                m.clear()

    def isRunning(self) -> bool:
        """True while any measurement of the group is running."""
        return any(m.isRunning() for m in self._alive())

    def __enter__(self) -> SynchronizedMeasurements:
        return self

    def __exit__(self, *exc: object) -> bool:
        """``with TT.SynchronizedMeasurements(tagger) as group:`` stops the group's measurements at the end."""
        self.stop()
        return False

    def waitUntilFinished(self, timeout: int = -1) -> bool:
        """Wait for a startFor of the group to end; ``timeout`` in ms, -1 waits forever."""
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout / 1000.0
        for m in self._alive():
            remaining = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not m.waitUntilFinished(remaining):
                return False
        return True
