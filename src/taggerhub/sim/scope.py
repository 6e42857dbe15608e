"""``Scope`` (with ``Event``), ``HistogramND`` and ``Dump`` with the vendor's constructors and data layout.

Kept in their own module so the parity work does not touch the shared measurement modules.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Chunk
from .enums import HIGH, LOW, UNKNOWN
from .iterators import IteratorBase
from .measurements import channel_list, positive

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase


class Event:
    """Pair of the timestamp and the new state returned by ``Scope.getData()``."""

    def __init__(self) -> None:
        self._time, self._state = 0, UNKNOWN

    @classmethod
    def _at(cls, time: int, state: int) -> Event:
        event = cls()
        event._time, event._state = int(time), int(state)
        return event

    # Properties on the class, so reflection (and the parity table) sees them as the vendor's.
    @property
    def time(self) -> int:
        """Timestamp in ps relative to the trigger."""
        return self._time

    @property
    def state(self) -> int:
        """Input state: HIGH, LOW or UNKNOWN."""
        return self._state

    def __repr__(self) -> str:
        return f"Event(time={self.time}, state={self.state})"


class Scope(IteratorBase):
    """Logic-analyser traces of both edges of ``event_channels`` for ``window_size`` ps after each trigger.

    Each trace starts with an event at time 0 carrying the input's state at the trigger (UNKNOWN before the
    first edge), then one event per edge: rising -> HIGH, falling -> LOW, times relative to the trigger. The
    trigger re-arms when a window has ended. With ``n_traces >= 1`` acquisition ends after that many traces
    (``ready()``); with ``n_traces < 1`` it retriggers forever and keeps the latest trace.
    """

    def __init__(self, tagger: TimeTaggerBase, event_channels: list[int], trigger_channel: int,
                 window_size: int = 1000000000, n_traces: int = 1, n_max_events: int = 1000):
        events = channel_list("event_channels", event_channels)
        for ch in events:
            tagger._check_channel(ch, physical=True)
        self._events = events
        self._inverted = [tagger.getInvertedChannel(ch) for ch in events]
        self._trigger = int(trigger_channel)
        self._window = positive("window_size", window_size)
        self._n_traces = int(n_traces)
        self._n_max = positive("n_max_events", n_max_events)
        self._on_clear()
        super().__init__(tagger, [self._trigger, *events, *self._inverted])

    def _describe(self) -> dict[str, Any]:
        return {"window_size": self._window, "n_traces": self._n_traces, "n_max_events": self._n_max}

    def _on_clear(self) -> None:
        self._state = [UNKNOWN] * len(self._events)  # input state before the tags still to be processed
        self._traces: list[list[list[Event]]] = []  # completed traces, each one event list per channel
        self._armed_after = -(2**62)  # a trigger at or after this time starts a trace
        self._open: tuple[int, list[list[Event]]] | None = None  # trigger time and events of a trace still open
        self._triggered = 0

    def _edges(self, chunk: Chunk, i: int) -> tuple[np.ndarray, np.ndarray]:
        rising, falling = chunk.get(self._events[i]), chunk.get(self._inverted[i])
        times = np.concatenate([rising, falling])
        states = np.concatenate([np.full(rising.size, HIGH), np.full(falling.size, LOW)])
        order = np.argsort(times, kind="stable")
        return times[order], states[order]

    def _on_chunk(self, chunk: Chunk) -> None:
        edges = [self._edges(chunk, i) for i in range(len(self._events))]
        if self._open is not None:  # a window that began in an earlier chunk
            self._collect(*self._open, edges, chunk.end_ps)
        t = self._armed_after
        for trig in chunk.get(self._trigger).tolist():
            if self._n_traces >= 1 and self._triggered >= self._n_traces:
                break
            if trig < t:
                continue
            trace = []
            for i, (times, st) in enumerate(edges):
                before = int(np.searchsorted(times, trig, side="left"))
                trace.append([Event._at(0, int(st[before - 1]) if before else self._state[i])])
            self._triggered += 1
            t = trig + self._window
            self._collect(trig, trace, edges, chunk.end_ps)
        self._armed_after = t
        for i, (_, st) in enumerate(edges):
            if st.size:
                self._state[i] = int(st[-1])
        if self.ready():
            self._running = False
            self._stop_at_ps = None
            self._finished.notify_all()

    def _collect(self, trig: int, trace: list[list[Event]], edges: list[tuple[np.ndarray, np.ndarray]],
                 end_ps: int) -> None:
        """Add this chunk's edges inside the trigger's window; keep the trace open if the window goes on."""
        for events, (times, st) in zip(trace, edges, strict=True):
            lo, hi = np.searchsorted(times, [trig, trig + self._window], side="left")
            room = max(self._n_max - len(events), 0)
            hi = min(hi, lo + room)
            events.extend(Event._at(int(x) - trig, int(s)) for x, s in zip(times[lo:hi], st[lo:hi], strict=True))
        if trig + self._window <= end_ps:
            self._open = None
            if self._n_traces < 1:
                self._traces = [trace]
            else:
                self._traces.append(trace)
        else:
            self._open = (trig, trace)

    def getData(self) -> tuple[tuple[Event, ...], ...]:
        """Event lists, one per event channel and trace (channel-major: channel index * n_traces + trace)."""
        with self._lock:
            n = max(self._n_traces, 1)
            out = []
            for i in range(len(self._events)):
                for k in range(n):
                    out.append(tuple(self._traces[k][i]) if k < len(self._traces) else ())
            return tuple(out)

    def getWindowSize(self) -> int:
        """The window_size parameter in ps."""
        return self._window

    def ready(self) -> bool:
        """Whether all n_traces traces have been acquired."""
        with self._lock:
            return self._n_traces >= 1 and len(self._traces) >= self._n_traces

    def triggered(self) -> int:
        """Number of trigger events captured so far."""
        with self._lock:
            return self._triggered


class HistogramND(IteratorBase):
    """N-dimensional single-start single-stop histogram: first stop per axis after each start."""

    def __init__(self, tagger: TimeTaggerBase, start_channel: int, stop_channels: list[int],
                 binwidths: list[int], n_bins: list[int]):
        stops = channel_list("stop_channels", stop_channels)
        if not len(stops) == len(binwidths) == len(n_bins):
            raise ValueError("stop_channels, binwidths and n_bins need the same length")
        self._bw = np.asarray([positive("binwidths", b) for b in binwidths], dtype=np.int64)
        self._n = tuple(positive("n_bins", n) for n in n_bins)
        self._hist = np.zeros(int(np.prod(self._n)), dtype=np.int64)
        self._pending: tuple[int, list[int | None]] | None = None  # last start and its dt per axis so far
        super().__init__(tagger, [int(start_channel), *stops])

    def _describe(self) -> dict[str, Any]:
        return {"binwidths": self._bw.tolist(), "n_bins": list(self._n)}

    def _on_clear(self) -> None:
        self._hist[:] = 0
        self._pending = None

    def _on_chunk(self, chunk: Chunk) -> None:
        prior = [] if self._pending is None else [self._pending[0]]
        starts = np.concatenate([np.asarray(prior, dtype=np.int64), chunk.get(self._channels[0])])
        if starts.size == 0:
            return
        following = np.concatenate([starts[1:], [np.iinfo(np.int64).max]])
        dts = np.empty((len(self._n), starts.size), dtype=np.int64)
        for axis in range(len(self._n)):
            stops = chunk.get(self._channels[1 + axis])
            j = np.searchsorted(stops, starts, side="right")
            first = stops[np.minimum(j, stops.size - 1)] if stops.size else np.zeros(starts.size, dtype=np.int64)
            dts[axis] = np.where((j < stops.size) & (first < following), first - starts, -1)
            if prior and self._pending[1][axis] is not None:  # found in an earlier chunk
                dts[axis, 0] = self._pending[1][axis]
        done = (dts >= 0).all(axis=0)
        inside = done & (dts < (self._bw * np.asarray(self._n))[:, None]).all(axis=0)
        if inside.any():
            flat = np.ravel_multi_index(tuple(dts[:, inside] // self._bw[:, None]), self._n)
            self._hist += np.bincount(flat, minlength=self._hist.size)
        last = starts.size - 1
        self._pending = None
        if not done[last]:
            self._pending = (int(starts[last]), [int(d) if d >= 0 else None for d in dts[:, last]])

    def getData(self) -> np.ndarray:
        """Counts as a 1-D array in row-major order of the axes (reshape to n_bins)."""
        with self._lock:
            return self._hist.astype(np.int32)

    def getIndex(self, dim: int = 0) -> np.ndarray:
        """Bin positions in ps along axis ``dim``."""
        return np.arange(self._n[int(dim)], dtype=np.int64) * self._bw[int(dim)]


# The vendor's 128-bit tag record (its "Time tag format" page): type, reserved, missed events, channel, time.
TAG_RECORD = np.dtype([("type", "u1"), ("reserved", "u1"), ("missed_events", "<u2"), ("channel", "<i4"),
                       ("time", "<i8")])
TAG_TIME, TAG_MISSED_EVENTS = 0, 4


class Dump(IteratorBase):
    """Writes the tag stream to ``filename`` as the vendor's raw 128-bit records (not FileReader's format)."""

    def __init__(self, tagger: TimeTaggerBase, filename: str, max_tags: int, channels: list[int] | None = None):
        wanted = list(channels) if channels else [c for c in tagger.getChannelList()]
        self._max = int(max_tags)
        self._written = 0
        self._file = open(os.fspath(filename), "wb")  # noqa: SIM115 - open for the measurement's lifetime
        super().__init__(tagger, wanted)

    def _describe(self) -> dict[str, Any]:
        return {"filename": self._file.name, "max_tags": self._max}

    def _on_clear(self) -> None:
        pass  # the vendor keeps writing to the same file

    def _on_chunk(self, chunk: Chunk) -> None:
        if self._file.closed:
            return
        if chunk.missed:  # an overflow interval: one missed-events record per channel, as the device reports
            rec = np.zeros(len(chunk.missed), dtype=TAG_RECORD)
            rec["type"], rec["time"] = TAG_MISSED_EVENTS, chunk.begin_ps
            rec["channel"] = list(chunk.missed)
            rec["missed_events"] = np.minimum(list(chunk.missed.values()), 65535)
            self._file.write(rec.tobytes())
        stamps, chans = chunk.merged(self._channels)
        if self._max >= 0:
            stamps, chans = stamps[: self._max - self._written], chans[: self._max - self._written]
        rec = np.zeros(stamps.size, dtype=TAG_RECORD)
        rec["time"], rec["channel"] = stamps, chans
        self._file.write(rec.tobytes())
        self._written += stamps.size
        if 0 <= self._max <= self._written:
            self._file.close()
            self._running = False
            self._stop_at_ps = None
            self._finished.notify_all()

    def stop(self) -> None:
        """Stop and flush the file."""
        super().stop()
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def _release(self) -> None:
        super()._release()
        with self._lock:
            self._file.close()
