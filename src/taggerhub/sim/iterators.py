"""Measurement base class shared by every simulated measurement and virtual channel.

Mirrors the vendor's ``IteratorBase``: a measurement attaches to a tagger,
registers the channels it needs, and receives every chunk of the tag stream on
the engine thread. ``start``/``startFor``/``stop``/``clear`` and the capture
duration follow the vendor's semantics; subclasses implement ``_on_chunk`` and
``_on_clear`` and read their state under ``self._lock``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from .engine import Chunk
from .handles import TaggerHandle as TimeTaggerBase  # the vendor's annotation, without importing the tagger


class IteratorBase:
    """Base of all measurements and virtual channels."""

    _starts_running = True
    _is_virtual = False  # virtual channels run before measurements and add tags to the chunk

    def __init__(self, tagger: TimeTaggerBase, channels: Iterable[int] = ()):
        if not hasattr(tagger, "_attach"):
            raise TypeError(f"tagger must be a TimeTagger object, got {type(tagger).__name__}")
        self._tagger = tagger
        self._lock = threading.RLock()
        self._finished = threading.Condition(self._lock)
        self._channels = [tagger._check_channel(c) for c in channels]
        self._running = False
        self._stop_at_ps: int | None = None
        self._capture_ps = 0
        self._alive = True
        self._error: BaseException | None = None
        tagger._attach(self)
        if self._starts_running and getattr(tagger, "_autostart", True):
            self.start()

    # -- lifecycle (vendor API) -------------------------------------------------
    def start(self) -> None:
        """Start or continue data acquisition."""
        with self._tagger._engine._lock, self._lock:  # after the chunk in flight: see startFor
            self._check_alive()
            self._running = True
            self._stop_at_ps = None
        self._tagger._engine.poke()

    def startFor(self, capture_duration: int, clear: bool = True) -> None:
        """Acquire for ``capture_duration`` picoseconds of tag time, then stop."""
        capture_duration = int(capture_duration)
        if capture_duration < 0:
            raise ValueError(f"capture_duration must be >= 0 ps, got {capture_duration}")
        # Under the engine's lock (always taken before a measurement's own, as the engine thread does), so the
        # acquisition begins after the chunk in flight: that chunk may have been generated before a setting the
        # caller just made (setTestSignal, then startFor) and would count without it.
        with self._tagger._engine._lock, self._lock:
            self._check_alive()
            if clear:
                self._clear_locked()
            self._stop_at_ps = self._capture_ps + capture_duration
            self._running = capture_duration > 0
            self._finished.notify_all()
        self._tagger._engine.poke()

    def stop(self) -> None:
        """Stop data acquisition; data stays available."""
        with self._lock:
            self._running = False
            self._stop_at_ps = None
            self._finished.notify_all()

    def abort(self) -> None:
        """Stop immediately, dropping the data of a chunk in flight."""
        self.stop()

    def clear(self) -> None:
        """Reset the accumulated data."""
        with self._lock:
            self._clear_locked()

    def _clear_locked(self) -> None:
        if self._stop_at_ps is not None:
            self._stop_at_ps -= self._capture_ps
        self._capture_ps = 0
        self._on_clear()

    def isRunning(self) -> bool:
        """Return whether the measurement is acquiring data."""
        with self._lock:
            return self._running

    def getCaptureDuration(self) -> int:
        """Return the tag time in picoseconds covered since the last clear."""
        with self._lock:
            return int(self._capture_ps)

    def waitUntilFinished(self, timeout: int = -1) -> bool:
        """Block until a ``startFor`` acquisition ends; ``timeout`` in milliseconds, -1 waits forever."""
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout / 1000.0
        with self._lock:
            while self._running and self._stop_at_ps is not None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._tagger._engine.poke()
                self._finished.wait(0.05 if remaining is None else min(0.05, remaining))
            self._check_alive()
            return not self._running

    def getConfiguration(self) -> dict[str, Any]:
        """Return a description of this measurement (the vendor's JSON, as a dict in Python)."""
        return json.loads(json.dumps({"name": type(self).__name__, "channels": self._channels, **self._describe()}))

    def __enter__(self) -> IteratorBase:
        return self

    def __exit__(self, *exc: object) -> bool:
        """``with TT.Correlation(...) as corr:`` releases the measurement at the end, as the vendor's does."""
        if self._alive:
            self._release()
        return False

    def _describe(self) -> dict[str, Any]:
        return {}

    # -- engine side ------------------------------------------------------------
    def _check_alive(self) -> None:
        if not self._alive:
            raise RuntimeError(f"{type(self).__name__} has been freed and can no longer be used")
        if self._error is not None:
            raise RuntimeError(f"{type(self).__name__} stopped on an internal error: {self._error!r}")

    def _fail(self, exc: BaseException) -> None:
        """Stop after an error on the engine thread; the next call on this object reports it."""
        with self._lock:
            self._error = exc
            self._running = False
            self._stop_at_ps = None
            self._finished.notify_all()

    def _wanted_channels(self) -> set[int]:
        return set(self._channels)

    def _feed(self, chunk: Chunk) -> None:
        """Take one chunk on the engine thread, honouring startFor's end."""
        with self._lock:
            if not self._running:
                return
            duration = chunk.end_ps - chunk.begin_ps
            if self._stop_at_ps is not None and self._capture_ps + duration >= self._stop_at_ps:
                keep = self._stop_at_ps - self._capture_ps
                cut_at = chunk.begin_ps + keep
                # An overflow interval's dropped tags have no times: its share of them is taken pro rata.
                missed = None if chunk.missed is None else {
                    ch: n * keep // max(duration, 1) for ch, n in chunk.missed.items()}
                chunk = Chunk(
                    chunk.begin_ps,
                    cut_at,
                    {ch: a[: int(np.searchsorted(a, cut_at))] for ch, a in chunk.tags.items()},
                    missed,
                )
                self._on_chunk(chunk)
                self._capture_ps += keep
                self._running = False
                self._stop_at_ps = None
                self._finished.notify_all()
                return
            self._on_chunk(chunk)
            self._capture_ps += duration

    def _on_chunk(self, chunk: Chunk) -> None:
        raise NotImplementedError

    def _on_clear(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Detach from the tagger (called when the tagger is freed or the object deleted)."""
        with self._lock:
            self._running = False
            self._alive = False
            self._finished.notify_all()
        self._tagger._detach(self)

    def __del__(self) -> None:
        try:
            if self._alive:
                self._release()
        except Exception:
            pass
