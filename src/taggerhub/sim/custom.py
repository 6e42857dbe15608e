"""``CustomMeasurement``: user code in Python receives the raw tag stream, as with the vendor library.

A subclass registers channels, calls ``finalize_init()`` and overrides
``process(incoming_tags, begin_time, end_time)``, which runs on the engine
thread with the measurement's lock held, once per chunk, with the chunk's tags
as a structured array of the vendor's ``INCOMING_TAGS_DTYPE`` (16 bytes a tag:
``type``, ``missed_events``, ``channel``, ``time``). ``clear_impl``,
``on_start`` and ``on_stop`` are called with the lock held as well; user code
reads its state under ``with self.mutex:`` (or ``_lock()``/``_unlock()``).
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import threading
import traceback
import weakref
from typing import Any

import numpy as np

from .engine import MERGE_KEY_BITS, MERGE_KEY_CHANNELS, Chunk
from .enums import TagType
from .handles import TaggerHandle as TimeTaggerBase  # the vendor's annotation, without importing the tagger
from .iterators import IteratorBase

# Field names, types and offsets exactly as in the vendor's CustomMeasurement.INCOMING_TAGS_DTYPE.
INCOMING_TAGS_DTYPE = np.dtype(
    {"names": ["type", "missed_events", "channel", "time"], "formats": ["u1", "<u2", "<i4", "<i8"],
     "offsets": [0, 2, 4, 8], "itemsize": 16},
    align=True,
)
MISSED_PER_RECORD = np.iinfo(np.uint16).max


def overflow_marker(begin_ps: int, end_ps: int, missed: dict[int, int]) -> np.ndarray:
    """The vendor's marking of lost tags: OverflowBegin, MissedEvents per channel (split at 65535), OverflowEnd."""
    records: list[tuple[int, int, int, int]] = [(TagType.OverflowBegin, 0, 0, begin_ps)]
    for channel, count in sorted(missed.items()):
        while count > 0:
            part = min(count, MISSED_PER_RECORD)
            records.append((TagType.MissedEvents, part, channel, end_ps))
            count -= part
    records.append((TagType.OverflowEnd, 0, 0, end_ps))
    return np.array(records, dtype=INCOMING_TAGS_DTYPE)


def overflow_records(chunk: Chunk, channels: list[int]) -> np.ndarray:
    """An overflow chunk's marking as seen by a reader of ``channels``: only their missed counts."""
    missed = {ch: n for ch, n in (chunk.missed or {}).items() if ch in channels and n > 0}
    return overflow_marker(chunk.begin_ps, chunk.end_ps, missed)


def chunk_records(chunk: Chunk, channels: list[int]) -> np.ndarray:
    """The chunk's tags of ``channels`` as time-ordered ``INCOMING_TAGS_DTYPE`` records, decoded straight from
    the merge's sort keys (no intermediate time and channel arrays)."""
    wanted = [c for c in channels if c in chunk.tags]
    keyed = chunk.sorted_keys(wanted) if len(wanted) > 1 else None
    if keyed is None:
        return tags_array(*chunk.merged(wanted))
    key, base, table = keyed
    records = np.empty(key.size, dtype=INCOMING_TAGS_DTYPE)
    records.view(np.uint32)[::4] = 0  # type, padding and missed_events: a TimeTag, nothing missed
    records["channel"] = np.take(table, key & (MERGE_KEY_CHANNELS - 1), mode="clip")
    key >>= MERGE_KEY_BITS
    key += base
    records["time"] = key
    return records


def tags_array(times: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """Time-ordered tags as an ``INCOMING_TAGS_DTYPE`` array (all of type TimeTag, nothing missed)."""
    tags = np.zeros(times.size, dtype=INCOMING_TAGS_DTYPE)
    tags["channel"] = channels
    tags["time"] = times
    return tags


class _CallableLock(_thread.RLock):
    """The measurement's RLock; calling it acquires, as the vendor's ``_lock()`` method does.

    ``IteratorBase`` keeps its lock in ``self._lock``, the very name of the vendor's
    ``_lock()`` method, so one object has to serve both ``with self._lock:`` and
    ``self._lock()``.
    """

    def __call__(self) -> None:
        self.acquire()


_running_customs: weakref.WeakSet[CustomMeasurementBase] = weakref.WeakSet()


class CustomMeasurementBase(IteratorBase):
    """Low-overhead access to the raw tag stream for measurements written in Python."""

    _starts_running = False  # the vendor starts a custom measurement in finalize_init()
    _shares_incoming_tags = False  # True in a subclass whose process() never writes to incoming_tags

    def __init__(self, tagger: TimeTaggerBase):
        super().__init__(tagger, ())
        self._lock = _CallableLock()
        self._finished = threading.Condition(self._lock)
        self._initialized = False
        _running_customs.add(self)

    @staticmethod
    def stop_all_custom_measurements() -> None:
        """Stop every custom measurement, so no callback runs while the interpreter shuts down."""
        for measurement in list(_running_customs):
            with contextlib.suppress(Exception):  # a measurement whose tagger is gone has nothing to stop
                measurement.stop()

    def register_channel(self, channel: int) -> None:
        """Forward the tags of ``channel`` to this measurement (the engine then produces them)."""
        channel = self._tagger._check_channel(channel)
        with self._lock:
            if channel not in self._channels:
                self._channels.append(channel)

    def unregister_channel(self, channel: int) -> None:
        """Stop forwarding the tags of ``channel``."""
        with self._lock:
            if int(channel) in self._channels:
                self._channels.remove(int(channel))

    def finalize_init(self) -> None:
        """Mark construction as done and start, unless created on a SynchronizedMeasurements proxy."""
        self._initialized = True
        if getattr(self._tagger, "_autostart", True):
            self.start()

    def is_running(self) -> bool:
        """Return whether the measurement is acquiring data."""
        return self.isRunning()

    def _unlock(self) -> None:
        self._lock.release()

    # Hooks for subclasses; each is called with the lock held.
    def clear_impl(self) -> None:
        """Reset the subclass's data (called by ``clear()`` and ``startFor(clear=True)``)."""

    def on_start(self) -> None:
        """Called when the measurement starts."""

    def on_stop(self) -> None:
        """Called when the measurement stops, also at the end of a ``startFor``."""

    def pre_stop(self) -> None:
        """Called before the measurement stops."""

    def process(self, incoming_tags: np.ndarray, begin_time: int, end_time: int) -> None:
        """Handle the tags of one chunk covering ``[begin_time, end_time)`` ps."""

    # -- lifecycle: IteratorBase's, plus the vendor's hooks on each transition --------
    def start(self) -> None:
        """Start or continue data acquisition."""
        with self._tagger._engine._lock, self._lock:  # the engine's lock first, as everywhere
            was_running = self._running
            super().start()
            if not was_running:
                self.on_start()

    def startFor(self, capture_duration: int, clear: bool = True) -> None:
        """Acquire for ``capture_duration`` picoseconds of tag time, then stop."""
        with self._tagger._engine._lock, self._lock:  # the engine's lock first, as everywhere
            was_running = self._running
            super().startFor(capture_duration, clear)
            if self._running and not was_running:
                self.on_start()

    def stop(self) -> None:
        """Stop data acquisition; the data stays available."""
        with self._lock:
            self._stop_with_hooks()

    def _stop_with_hooks(self) -> None:
        if self._running:
            self.pre_stop()
            super().stop()
            self.on_stop()
        else:
            super().stop()

    def _on_clear(self) -> None:
        self.clear_impl()

    def _feed(self, chunk: Chunk) -> None:
        with self._lock:
            was_running = self._running
            super()._feed(chunk)
            if was_running and not self._running:  # a startFor just ended
                self.on_stop()

    def _on_chunk(self, chunk: Chunk) -> None:
        if chunk.missed is not None:  # an overflow interval of the device: marked as the vendor's stream does
            tags = overflow_records(chunk, self._channels)
        else:
            key = ("incoming_tags", tuple(self._channels))
            shared = chunk.cache.get(key)
            if shared is None:  # the first measurement on these channels merges them; the others share it
                shared = chunk.cache[key] = chunk_records(chunk, self._channels)
            # process() may change its array (the vendor's is its own): only a tap that only reads gets the shared one
            tags = shared if self._shares_incoming_tags else shared.copy()
        try:
            self.process(tags, chunk.begin_ps, chunk.end_ps)
        except Exception:
            traceback.print_exc()  # as the vendor's wrapper does, then the measurement stops on the error
            raise

    def _release(self) -> None:
        _running_customs.discard(self)
        super()._release()

    def _describe(self) -> dict[str, Any]:
        return {"class": type(self).__name__}


class CustomMeasurement(CustomMeasurementBase):
    """Base class of measurements written in Python; override ``process``."""

    INCOMING_TAGS_DTYPE = INCOMING_TAGS_DTYPE

    def __init__(self, time_tagger: TimeTaggerBase):
        super().__init__(time_tagger)
        self.showError = True
        self.mutex = _Mutex(weakref.proxy(self))  # a proxy: no reference cycle keeping a dropped measurement alive

    def process(self, incoming_tags: np.ndarray, begin_time: int, end_time: int) -> None:
        """Say once that a subclass must override this, as the vendor's base class does."""
        if self.showError:
            print("ERROR: The process() method of the Python-CustomMeasurement must be overwritten!")
            self.showError = False

    def __enter__(self) -> CustomMeasurement:
        return self

    def __exit__(self, *exc: object) -> bool:
        self.stop()
        return False


class _Mutex:
    """``with measurement.mutex:`` holds the measurement's lock (the vendor's TTMutex)."""

    def __init__(self, measurement: Any):
        self.iter = measurement

    def __enter__(self) -> _Mutex:
        self.iter._lock()
        return self

    def __exit__(self, *exc: object) -> bool:
        self.iter._unlock()
        return False


atexit.register(CustomMeasurementBase.stop_all_custom_measurements)
