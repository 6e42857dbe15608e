"""Time-difference measurements: ``Histogram``, ``StartStop``, ``TimeDifferences``, ``CountBetweenMarkers``.

Constructors, defaults and return dtypes follow the vendor library's
docstrings; pairs are found with :mod:`taggerhub.sim.pairs`, vectorised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Chunk
from .enums import CHANNEL_UNUSED
from .histaxis import HistogramAxis
from .iterators import IteratorBase
from .measurements import channel_list, positive
from .pairs import EMPTY, PairWindow

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase


def _used(channel: int) -> bool:
    return int(channel) != CHANNEL_UNUSED


class TimeDifferences(IteratorBase):
    """Multi-start multi-stop histograms of ``click - start``, stepped by next_channel, reset by sync_channel."""

    def __init__(self, tagger: TimeTaggerBase, click_channel: int, start_channel: int = CHANNEL_UNUSED,
                 next_channel: int = CHANNEL_UNUSED, sync_channel: int = CHANNEL_UNUSED,
                 binwidth: int = 1000, n_bins: int = 1000, n_histograms: int = 1):
        click_channel = int(click_channel)
        start_channel = int(start_channel) if _used(start_channel) else click_channel
        self._click, self._start = click_channel, start_channel
        self._next = int(next_channel) if _used(next_channel) else None
        self._sync = int(sync_channel) if _used(sync_channel) else None
        if self._next is None and self._sync is not None:
            raise ValueError("sync_channel needs a next_channel to step through the histograms")
        self._binwidth = positive("binwidth", binwidth)
        self._n_bins = positive("n_bins", n_bins)
        self._n_histograms = positive("n_histograms", n_histograms)
        self._hist = np.zeros((self._n_histograms, self._n_bins), dtype=np.int64)
        self._window = PairWindow(0, self._binwidth * self._n_bins)
        self._next_total = 0  # next-channel events since clear
        # With a sync channel the index follows the vendor's documented state machine (as TimeDifferencesND's).
        self._axis = HistogramAxis(self._next, self._sync, self._n_histograms) if self._sync is not None else None
        self._rollovers = 0
        self._max_counts = 0
        channels = [click_channel, start_channel] + [c for c in (self._next, self._sync) if c is not None]
        super().__init__(tagger, channels)

    def _describe(self) -> dict[str, Any]:
        return {"binwidth": self._binwidth, "n_bins": self._n_bins, "n_histograms": self._n_histograms}

    def _on_clear(self) -> None:
        self._hist[:] = 0
        self._window.clear()
        self._next_total = self._rollovers = 0
        if self._axis is not None:
            self._axis.clear()

    def _histogram_of(self, chunk: Chunk, starts: np.ndarray) -> np.ndarray:
        """Histogram index for each start; -1 while paused after a rollover (waiting for sync)."""
        if self._next is None:
            return np.zeros(starts.size, dtype=np.int64)
        nexts = chunk.get(self._next)
        steps = self._next_total + np.searchsorted(nexts, starts, side="right")
        if self._sync is None:
            index = steps % self._n_histograms
            rolled = (self._next_total + nexts.size) // self._n_histograms - self._next_total // self._n_histograms
        else:  # waits for a sync, then a next tag starts histogram 0; a rollover pauses until the next sync
            assert self._axis is not None
            index, rolled_at = self._axis.advance(chunk, starts)
            rolled = rolled_at.size
        self._rollovers += int(rolled)
        self._next_total += nexts.size
        return index

    def _on_chunk(self, chunk: Chunk) -> None:
        if self._max_counts and self._rollovers >= self._max_counts:
            return
        starts, clicks = chunk.get(self._start), chunk.get(self._click)
        labels = self._histogram_of(chunk, starts)
        hist_idx, dt = self._window.feed(starts, clicks, chunk.end_ps, tag_a=labels)
        if self._click == self._start and clicks.size:
            keep = dt > 0  # a tag is not its own stop
            hist_idx, dt = hist_idx[keep], dt[keep]
        keep = hist_idx >= 0
        if not keep.all():
            hist_idx, dt = hist_idx[keep], dt[keep]
        if dt.size:
            flat = hist_idx * self._n_bins + dt // self._binwidth
            self._hist += np.bincount(flat, minlength=self._hist.size).reshape(self._hist.shape)

    def getData(self) -> np.ndarray:
        """Histograms, shape (n_histograms, n_bins)."""
        with self._lock:
            return self._hist.astype(np.int32)

    def getIndex(self) -> np.ndarray:
        """Start time of each bin in ps."""
        return np.arange(self._n_bins, dtype=np.int64) * self._binwidth

    def getCounts(self) -> int:
        """Number of rollovers (histogram index resets)."""
        with self._lock:
            return int(self._rollovers)

    def getHistogramIndex(self) -> int:
        """Index of the histogram currently filled."""
        with self._lock:
            if self._sync is None:
                return int(self._next_total % self._n_histograms)
            assert self._axis is not None
            return self._axis.index()

    def setMaxCounts(self, max_counts: int) -> None:
        """Stop accumulating after ``max_counts`` rollovers (0: never)."""
        with self._lock:
            self._max_counts = int(max_counts)

    def setMaxRollovers(self, max_rollovers: int) -> None:
        """Same as setMaxCounts."""
        self.setMaxCounts(max_rollovers)

    def ready(self) -> bool:
        """True when the number of rollovers set with setMaxCounts has been reached."""
        with self._lock:
            return bool(self._max_counts) and self._rollovers >= self._max_counts


class Histogram(TimeDifferences):
    """Multi-start multi-stop histogram of ``click - start`` in [0, n_bins * binwidth)."""

    def __init__(self, tagger: TimeTaggerBase, click_channel: int, start_channel: int = CHANNEL_UNUSED,
                 binwidth: int = 1000, n_bins: int = 1000):
        super().__init__(tagger, click_channel, start_channel, CHANNEL_UNUSED, CHANNEL_UNUSED, binwidth, n_bins, 1)

    def getData(self) -> np.ndarray:
        """Counts per bin, shape (n_bins,)."""
        with self._lock:
            return self._hist[0].astype(np.int32)


class StartStop(IteratorBase):
    """Each click paired with the latest unused start before it; only non-empty bins are kept."""

    def __init__(self, tagger: TimeTaggerBase, click_channel: int, start_channel: int = CHANNEL_UNUSED,
                 binwidth: int = 1000):
        click_channel = int(click_channel)
        start_channel = int(start_channel) if _used(start_channel) else click_channel
        self._binwidth = positive("binwidth", binwidth)
        self._bins: dict[int, int] = {}
        self._last_start: int | None = None  # a start not yet used by a click
        self._last_click = -(2**62)
        super().__init__(tagger, [click_channel, start_channel])

    def _describe(self) -> dict[str, Any]:
        return {"binwidth": self._binwidth}

    def _on_clear(self) -> None:
        self._bins.clear()
        self._last_start = None

    def _on_chunk(self, chunk: Chunk) -> None:
        click_ch, start_ch = self._channels
        clicks, starts = chunk.get(click_ch), chunk.get(start_ch)
        if click_ch == start_ch:
            clicks_all = np.concatenate([[self._last_start], clicks]) if self._last_start is not None else clicks
            dt = np.diff(clicks_all)
            if clicks.size:
                self._last_start = int(clicks[-1])
        else:
            if self._last_start is not None:
                starts = np.concatenate([[self._last_start], starts])
            prev_clicks = np.concatenate([[self._last_click], clicks[:-1]])
            idx = np.searchsorted(starts, clicks, side="left") - 1
            has = idx >= 0
            latest = np.where(has, starts[np.maximum(idx, 0)] if starts.size else 0, 0)
            valid = has & (latest > prev_clicks)
            dt = clicks[valid] - latest[valid]
            if clicks.size:
                self._last_click = int(clicks[-1])
            if starts.size and (not clicks.size or starts[-1] > clicks[-1]):
                self._last_start = int(starts[-1])
            else:
                self._last_start = None
        if dt.size:
            bins, counts = np.unique(dt // self._binwidth, return_counts=True)
            for b, c in zip(bins.tolist(), counts.tolist(), strict=True):
                self._bins[b] = self._bins.get(b, 0) + c

    def getData(self) -> np.ndarray:
        """Non-empty bins as an (N, 2) int64 array of (time in ps, counts)."""
        with self._lock:
            if not self._bins:
                return np.empty((0, 2), dtype=np.int64)
            keys = np.array(sorted(self._bins), dtype=np.int64)
            counts = np.array([self._bins[k] for k in keys.tolist()], dtype=np.int64)
            return np.stack([keys * self._binwidth, counts], axis=1)


class GatedCounter(IteratorBase):
    """Clicks on each channel counted from every ``begin_channel`` tag to the next begin (or ``end_channel``) tag."""

    def __init__(self, tagger: TimeTaggerBase, click_channels: list[int], begin_channel: int,
                 end_channel: int = CHANNEL_UNUSED, n_values: int = 1000):
        clicks = channel_list("click_channels", click_channels)
        self._n_values = positive("n_values", n_values)
        self._end = int(end_channel) if _used(end_channel) else None
        self._begin = int(begin_channel)
        if self._end is not None and self._end == self._begin:
            raise ValueError("end_channel must differ from begin_channel")
        self._clicks = clicks
        self._data = np.zeros((len(clicks), self._n_values), dtype=np.int64)
        self._widths = np.zeros(self._n_values, dtype=np.int64)
        self._index = np.zeros(self._n_values, dtype=np.int64)
        self._filled = 0
        self._first_begin: int | None = None
        self._open: tuple[int, np.ndarray] | None = None  # (begin time, clicks so far) of the open bin
        channels = [*clicks, self._begin] + ([self._end] if self._end is not None else [])
        super().__init__(tagger, channels)

    def _describe(self) -> dict[str, Any]:
        return {"n_values": self._n_values}

    def _on_clear(self) -> None:
        self._data[:] = 0
        self._widths[:] = 0
        self._index[:] = 0
        self._filled = 0
        self._first_begin = None
        self._open = None

    def _store(self, begins: np.ndarray, closes: np.ndarray, counts: np.ndarray) -> None:
        n = min(begins.size, self._n_values - self._filled)
        if n <= 0:
            return
        if self._first_begin is None:
            self._first_begin = int(begins[0])
        sl = slice(self._filled, self._filled + n)
        self._data[:, sl] = counts[:, :n]
        self._widths[sl] = closes[:n] - begins[:n]
        self._index[sl] = begins[:n] - self._first_begin
        self._filled += n

    def _on_chunk(self, chunk: Chunk) -> None:
        if self._filled >= self._n_values:
            return
        clicks = [chunk.get(c) for c in self._clicks]
        begins = chunk.get(self._begin)
        ends = chunk.get(self._end) if self._end is not None else EMPTY
        # A bin closes at the next begin or, with an end channel, at the first end after its begin.
        marks = np.sort(np.concatenate([begins, ends])) if ends.size else begins
        if self._open is not None:
            t_open, so_far = self._open
            if not marks.size:
                self._open = (t_open, so_far + [c.size for c in clicks])
                return
            close = int(marks[0])
            counts = so_far + [int(np.searchsorted(c, close, side="left")) for c in clicks]
            self._store(np.array([t_open]), np.array([close]), counts[:, None])
            self._open = None
        if begins.size == 0:
            return
        next_mark = np.searchsorted(marks, begins, side="right")
        has_close = next_mark < marks.size
        closes = np.where(has_close, marks[np.minimum(next_mark, marks.size - 1)], chunk.end_ps)
        counts = np.stack([np.searchsorted(c, closes, side="left") - np.searchsorted(c, begins, side="left")
                           for c in clicks])
        self._store(begins[has_close], closes[has_close], counts[:, has_close])
        if not has_close[-1]:
            self._open = (int(begins[-1]), counts[:, -1].astype(np.int64))

    def getData(self) -> np.ndarray:
        """Counts, shape (channels, n_values)."""
        with self._lock:
            return self._data.astype(np.int32)

    def getBinWidths(self) -> np.ndarray:
        """Duration of each bin in ps."""
        with self._lock:
            return self._widths.copy()

    def getIndex(self) -> np.ndarray:
        """Time of each begin tag in ps relative to the first one."""
        with self._lock:
            return self._index.copy()

    def ready(self) -> bool:
        """True when all n_values bins are filled."""
        with self._lock:
            return self._filled >= self._n_values


class CountBetweenMarkers(GatedCounter):
    """GatedCounter for a single click channel (the vendor deprecates it in favour of GatedCounter)."""

    def __init__(self, tagger: TimeTaggerBase, click_channel: int, begin_channel: int,
                 end_channel: int = CHANNEL_UNUSED, n_values: int = 1000):
        super().__init__(tagger, [int(click_channel)], begin_channel, end_channel, n_values)

    def getData(self) -> np.ndarray:
        """Counts per bin, shape (n_values,)."""
        with self._lock:
            return self._data[0].astype(np.int32)


class Histogram2D(IteratorBase):
    """2D histogram of (first stop_1 - start, first stop_2 - start), each start valid until the next one."""

    def __init__(self, tagger: TimeTaggerBase, start_channel: int, stop_channel_1: int, stop_channel_2: int,
                 binwidth_1: int, binwidth_2: int, n_bins_1: int, n_bins_2: int):
        self._bw = (positive("binwidth_1", binwidth_1), positive("binwidth_2", binwidth_2))
        self._n = (positive("n_bins_1", n_bins_1), positive("n_bins_2", n_bins_2))
        self._hist = np.zeros(self._n, dtype=np.int64)
        self._pending: tuple[int, int | None, int | None] | None = None  # start time, dt on each axis so far
        super().__init__(tagger, [int(start_channel), int(stop_channel_1), int(stop_channel_2)])

    def _describe(self) -> dict[str, Any]:
        return {"binwidth_1": self._bw[0], "binwidth_2": self._bw[1], "n_bins_1": self._n[0], "n_bins_2": self._n[1]}

    def _on_clear(self) -> None:
        self._hist[:] = 0
        self._pending = None

    def _on_chunk(self, chunk: Chunk) -> None:
        new_starts = chunk.get(self._channels[0])
        prior = [] if self._pending is None else [self._pending[0]]
        starts = np.concatenate([np.asarray(prior, dtype=np.int64), new_starts])
        if starts.size == 0:
            return
        following = np.concatenate([starts[1:], [np.iinfo(np.int64).max]])
        dts = []
        for axis in (0, 1):
            stops = chunk.get(self._channels[1 + axis])
            j = np.searchsorted(stops, starts, side="right")
            first = np.where(j < stops.size, stops[np.minimum(j, max(stops.size - 1, 0))] if stops.size else 0, -1)
            found = (j < stops.size) & (first < following)
            dt = np.where(found, first - starts, -1)
            if prior and self._pending[1 + axis] is not None:  # found in an earlier chunk
                dt[0] = self._pending[1 + axis]
            dts.append(dt)
        dt1, dt2 = dts
        done = (dt1 >= 0) & (dt2 >= 0)
        inside = done & (dt1 < self._n[0] * self._bw[0]) & (dt2 < self._n[1] * self._bw[1])
        if inside.any():
            flat = (dt1[inside] // self._bw[0]) * self._n[1] + dt2[inside] // self._bw[1]
            self._hist += np.bincount(flat, minlength=self._hist.size).reshape(self._n)
        last = starts.size - 1
        self._pending = None
        if not done[last]:
            self._pending = (int(starts[last]), int(dt1[last]) if dt1[last] >= 0 else None,
                             int(dt2[last]) if dt2[last] >= 0 else None)

    def getData(self) -> np.ndarray:
        """Counts, shape (n_bins_1, n_bins_2)."""
        with self._lock:
            return self._hist.astype(np.int32)

    def getIndex_1(self) -> np.ndarray:
        """Bin positions of axis 1 in ps."""
        return np.arange(self._n[0], dtype=np.int64) * self._bw[0]

    def getIndex_2(self) -> np.ndarray:
        """Bin positions of axis 2 in ps."""
        return np.arange(self._n[1], dtype=np.int64) * self._bw[1]

    def getIndex(self) -> np.ndarray:
        """Meshgrid of both axes, shape (n_bins_1, n_bins_2, 2)."""
        grid_1, grid_2 = np.meshgrid(self.getIndex_1(), self.getIndex_2(), indexing="ij")
        return np.stack([grid_1, grid_2], axis=-1)
