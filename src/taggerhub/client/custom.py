"""``TT.CustomMeasurement`` through a taggerhub server: ``process()`` runs here, on tags streamed from the server.

Vendor-style code (``class Mine(TT.CustomMeasurement)``: ``register_channel``, ``finalize_init``,
``process(incoming_tags, begin_time, end_time)``, ``with self.mutex``) runs unchanged with
``TT = client.createProxy(...)``. ``finalize_init()`` opens a tag stream on the server (a
server-side CustomMeasurement feeding a bounded queue); a thread of this process pulls batches of
raw ``INCOMING_TAGS_DTYPE`` records on a connection of its own and calls ``process()`` under the
measurement's lock, one call per server chunk. Tags the server had to drop because this process
fell behind arrive as the vendor's overflow marking (``OverflowBegin``, ``MissedEvents`` with
counts, ``OverflowEnd``). ``stop()`` and ``waitUntilFinished()`` return once every tag taken
before them has been processed.
"""

from __future__ import annotations

import _thread
import contextlib
import threading
import time
import traceback
import weakref
from typing import Any

import numpy as np

from ..errors import ObjectGone, ServerUnavailable
from ..sim.custom import INCOMING_TAGS_DTYPE

READ_WAIT_S = 0.2
READ_MAX_BYTES = 32 * 1024 * 1024


class _CallableLock(_thread.RLock):
    """The measurement's lock; calling it acquires, as the vendor's ``_lock()`` method does."""

    def __call__(self) -> None:
        self.acquire()


class _Mutex:
    """``with measurement.mutex:`` holds the measurement's lock (the vendor's TTMutex)."""

    def __init__(self, lock: _CallableLock):
        self._held = lock

    def __enter__(self) -> _Mutex:
        self._held.acquire()
        return self

    def __exit__(self, *exc: object) -> bool:
        self._held.release()
        return False


class _Pump:
    """The stream's reader: its own connection, the last batch's state, and the stop signal."""

    def __init__(self, proxy: Any, stream_id: str):
        self.proxy = proxy
        self.stream_id = stream_id
        self.closing = threading.Event()
        self.seen = threading.Condition()
        self.last: dict[str, Any] = {"read": 0, "running": True, "pending": 1, "capture_ps": 0}
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def close(self, library: Any) -> None:
        """Close the stream on the server and end the reader (also when the measurement is collected)."""
        self.closing.set()
        with contextlib.suppress(Exception):  # the server or the connection may be gone at exit
            library.hub_stream_close(self.stream_id)
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(READ_WAIT_S * 10)
        with contextlib.suppress(Exception):
            self.proxy._pyroRelease()


def _pump(pump: _Pump, measurement_ref: weakref.ref) -> None:
    """Pull batches until closed; hand each frame to ``process()`` of the measurement, while it lives."""
    while not pump.closing.is_set():
        try:
            batch = pump.proxy.hub_stream_read(pump.stream_id, READ_MAX_BYTES, READ_WAIT_S)
        except (LookupError, ObjectGone, ServerUnavailable) as exc:  # closed, or the server went away
            pump.error = exc
            break
        except Exception as exc:
            pump.error = exc
            break
        if batch.get("closed"):
            break
        measurement = measurement_ref()
        if measurement is None:
            break
        measurement._deliver(batch)
        measurement._follow(batch)
        del measurement
        with pump.seen:
            pump.last = batch
            pump.seen.notify_all()
    with pump.seen:
        pump.closing.set()
        pump.seen.notify_all()


class RemoteCustomMeasurement:
    """Base class of measurements written in Python whose ``process()`` runs in this client process."""

    INCOMING_TAGS_DTYPE = INCOMING_TAGS_DTYPE
    _library: Any = None  # the library proxy this class was made for (set by custom_measurement_class)

    def __init__(self, tagger: Any):
        self._tagger_proxy = tagger
        self._lock = _CallableLock()
        self.mutex = _Mutex(self._lock)
        self._channels: list[int] = []
        self._running = False
        self._started_read = 0  # batches up to this one were taken before the last start
        self._cleared_after = 0  # batches up to this one were taken before the last clear: dropped
        self._pump: _Pump | None = None
        self._process_error: BaseException | None = None
        self.showError = True

    # -- the vendor's API ------------------------------------------------------------
    def register_channel(self, channel: int) -> None:
        """Stream the tags of ``channel`` to this measurement."""
        with self._lock:
            if int(channel) not in self._channels:
                self._channels.append(int(channel))
        if self._pump is not None:
            self._control("register_channel", int(channel))

    def unregister_channel(self, channel: int) -> None:
        """Stop streaming the tags of ``channel``."""
        with self._lock:
            if int(channel) in self._channels:
                self._channels.remove(int(channel))
        if self._pump is not None:
            self._control("unregister_channel", int(channel))

    def finalize_init(self) -> None:
        """Open the stream on the server; it starts, unless created on a SynchronizedMeasurements tagger."""
        library = type(self)._library
        opened = library.hub_stream_open(self._tagger_proxy, list(self._channels))
        reader = library._taggerhub_new_connection()
        pump = self._pump = _Pump(reader, opened["id"])
        weakref.finalize(self, pump.close, library)
        pump.thread = threading.Thread(target=_pump, args=(pump, weakref.ref(self)), daemon=True,
                                       name=f"taggerhub-stream-{opened['id']}")
        pump.thread.start()
        if opened["running"]:
            self._started(0)

    def start(self) -> None:
        """Start or continue acquisition."""
        self._started(self._control("start")["read"])

    def startFor(self, capture_duration: int, clear: bool = True) -> None:
        """Acquire for ``capture_duration`` ps of tag time, then stop (``on_stop`` runs once the tags are in)."""
        self._started(self._clearing("startFor", int(capture_duration), bool(clear))["read"])

    def stop(self) -> None:
        """Stop acquisition; returns after every tag taken before it was processed."""
        if self._pump is None or self._pump.closing.is_set():
            self._stopped()
            return
        try:
            state = self._control("stop")
        except (LookupError, ObjectGone, ServerUnavailable):
            self._stopped()
            return
        self._wait_drained(state["read"], None)
        self._stopped()

    def clear(self) -> None:
        """Reset the data (``clear_impl``) and the server's queue."""
        self._clearing("clear")

    def _clearing(self, action: str, *args: Any) -> dict[str, Any]:
        """Run an action that may clear: no tag taken before the server's clear reaches process() after it.

        The lock is held across the call, so the reader waits; batches it took before the clear are dropped.
        """
        with self._lock:
            state = self._control(action, *args)
            if state["cleared_after"] is not None:
                self.clear_impl()
                self._cleared_after = state["cleared_after"]
        return state

    def isRunning(self) -> bool:
        return bool(self._state()["running"])

    def is_running(self) -> bool:
        return self.isRunning()

    def getCaptureDuration(self) -> int:
        return int(self._state()["capture_ps"])

    def waitUntilFinished(self, timeout: int = -1) -> bool:
        """Wait (``timeout`` ms, -1 for ever) until acquisition has ended and every tag was processed."""
        state = self._state()
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout / 1000
        finished = self._wait_drained(state["read"], deadline)
        if self._process_error is not None:
            raise RuntimeError(f"process() failed: {self._process_error!r}") from self._process_error
        if finished:
            self._stopped()
        return finished

    def _unlock(self) -> None:
        self._lock.release()

    # Hooks for subclasses; each is called with the lock held.
    def clear_impl(self) -> None:
        """Reset the subclass's data."""

    def on_start(self) -> None:
        """Called when the measurement starts."""

    def on_stop(self) -> None:
        """Called when the measurement stops, also at the end of a ``startFor`` (once its tags are processed)."""

    def process(self, incoming_tags: np.ndarray, begin_time: int, end_time: int) -> None:
        if self.showError:
            print("ERROR: The process() method of the Python-CustomMeasurement must be overwritten!")
            self.showError = False

    def __enter__(self) -> RemoteCustomMeasurement:
        return self

    def __exit__(self, *exc: object) -> bool:
        self.stop()
        return False

    # -- plumbing --------------------------------------------------------------------
    def _control(self, action: str, *args: Any) -> dict[str, Any]:
        if self._pump is None:
            raise RuntimeError(f"{action}(): call finalize_init() first")
        return type(self)._library.hub_stream_control(self._pump.stream_id, action, *args)

    def _state(self) -> dict[str, Any]:
        if self._pump is None:
            return {"running": False, "capture_ps": 0, "read": 0}
        return type(self)._library.hub_stream_state(self._pump.stream_id)

    def _started(self, after_read: int) -> None:
        with self._lock:
            self._started_read = after_read
            if not self._running:
                self._running = True
                self.on_start()

    def _stopped(self) -> None:
        with self._lock:
            if self._running:
                self._running = False
                self.on_stop()

    def _follow(self, batch: dict[str, Any]) -> None:
        """Run the hooks for starts and ends the server saw (a startFor ending, a synchronized group)."""
        if batch["running"] and not self._running:
            self._started(self._started_read)
        elif batch["read"] > self._started_read and not batch["running"] and not batch["pending"]:
            self._stopped()

    def _wait_drained(self, after_read: int, deadline: float | None) -> bool:
        """Wait for a batch taken after read ``after_read`` that says: stopped, nothing left queued."""
        pump = self._pump
        if pump is None:
            return True
        with pump.seen:
            while True:
                last = pump.last
                if last["read"] > after_read and not last["running"] and not last["pending"]:
                    return True
                if pump.closing.is_set():
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                pump.seen.wait(READ_WAIT_S if left is None else min(left, READ_WAIT_S))

    def _deliver(self, batch: dict[str, Any]) -> None:
        """Call ``process()`` once per frame of ``batch``, under the lock; a failure stops the stream."""
        if self._process_error is not None:
            return
        tags = np.frombuffer(batch["tags"], dtype=INCOMING_TAGS_DTYPE)
        offset = 0
        try:
            with self._lock:
                if batch["read"] <= self._cleared_after:
                    return
                for begin, end, count in batch["frames"]:
                    self.process(tags[offset:offset + count], begin, end)
                    offset += count
        except Exception as exc:
            traceback.print_exc()  # as the vendor's wrapper does; then the measurement stops
            self._process_error = exc
            with contextlib.suppress(Exception):
                self._pump.proxy.hub_stream_control(self._pump.stream_id, "stop")  # type: ignore[union-attr]


def custom_measurement_class(library: Any) -> type:
    """``TT.CustomMeasurement`` for the server behind ``library``."""
    return type("CustomMeasurement", (RemoteCustomMeasurement,), {
        "_library": library, "__module__": __name__,
        "__doc__": RemoteCustomMeasurement.__doc__})
