"""``TimeDifferencesND``: ``TimeDifferences`` with one histogram index per dimension, each stepped by its own
next channel and reset by its own sync channel (FLIM line/pixel scans, multi-parameter sweeps).

Semantics, from the vendor's docstrings of ``TimeDifferences`` and ``TimeDifferencesND``:

* without a sync channel a dimension's index starts at 0, each next tag moves it on by one and after the last
  histogram it rolls over to 0 (a rollover), exactly as the simulator's ``TimeDifferences``;
* with a sync channel it waits for a sync (index -2), then for a next tag (-1), which starts histogram 0;
  a next tag in the last histogram is a rollover and pauses the dimension (-2) until the next sync; a sync
  always resets it to waiting for a next tag;
* a start tag accumulates while every dimension has an index >= 0, into the histogram at the flat position
  ``sum(index[d] * stride[d])`` with strides growing from left to right (``std::layout_left``);
* at equal times the documented order holds: sync, then next, then start.

Pairs are found with :class:`taggerhub.sim.pairs.PairWindow`, as in ``TimeDifferences``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Chunk
from .enums import CHANNEL_UNUSED
from .histaxis import HistogramAxis
from .iterators import IteratorBase
from .measurements import positive
from .pairs import PairWindow

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase

class TimeDifferencesND(IteratorBase):
    """Multi-start multi-stop histograms of ``click - start`` indexed in several dimensions at once."""

    def __init__(self, tagger: TimeTaggerBase, click_channel: int, start_channel: int, next_channels: list[int],
                 sync_channels: list[int], n_histograms: list[int], binwidth: int, n_bins: int):
        next_channels, sync_channels = [int(c) for c in next_channels], [int(c) for c in sync_channels]
        sizes = [positive("n_histograms", n) for n in n_histograms]
        if not sizes or not len(next_channels) == len(sync_channels) == len(sizes):
            raise ValueError(f"next_channels, sync_channels and n_histograms need one entry per dimension, got "
                             f"{len(next_channels)}, {len(sync_channels)} and {len(sizes)}")
        if CHANNEL_UNUSED in next_channels:
            raise ValueError("every dimension needs a next channel to step through its histograms")
        click_channel = int(click_channel)
        self._click = click_channel
        self._start = int(start_channel) if int(start_channel) != CHANNEL_UNUSED else click_channel
        self._axes = [HistogramAxis(n, None if s == CHANNEL_UNUSED else s, size)
                      for n, s, size in zip(next_channels, sync_channels, sizes, strict=True)]
        self._strides = np.cumprod([1, *sizes[:-1]]).astype(np.int64)
        self._binwidth = positive("binwidth", binwidth)
        self._n_bins = positive("n_bins", n_bins)
        self._hist = np.zeros((int(np.prod(sizes)), self._n_bins), dtype=np.int64)
        self._window = PairWindow(0, self._binwidth * self._n_bins)
        self._max_rollovers = [0] * len(sizes)
        self._done = False
        channels = [click_channel, self._start, *next_channels, *(s for s in sync_channels if s != CHANNEL_UNUSED)]
        super().__init__(tagger, channels)

    def _describe(self) -> dict[str, Any]:
        return {"binwidth": self._binwidth, "n_bins": self._n_bins,
                "n_histograms": [axis.size for axis in self._axes]}

    def _on_clear(self) -> None:
        self._hist[:] = 0
        self._window.clear()
        for axis in self._axes:
            axis.clear()
        self._done = False

    def _on_chunk(self, chunk: Chunk) -> None:
        if self._done:
            return
        starts, clicks = chunk.get(self._start), chunk.get(self._click)
        flat = np.zeros(starts.size, dtype=np.int64)
        waiting = np.zeros(starts.size, dtype=bool)
        stop_at: int | None = None
        for axis, stride, limit in zip(self._axes, self._strides, self._max_rollovers, strict=True):
            index, rolled = axis.advance(chunk, starts)
            waiting |= index < 0
            flat += np.maximum(index, 0) * stride
            if limit and axis.rollovers + rolled.size >= limit:  # this chunk holds the limiting rollover
                at = int(rolled[limit - axis.rollovers - 1])
                stop_at = at if stop_at is None else min(stop_at, at)
                axis.rollovers = limit
            else:
                axis.rollovers += rolled.size
        flat[waiting] = -1
        end = chunk.end_ps
        if stop_at is not None:  # the measurement stops at the first rollover limit met
            keep_starts = int(np.searchsorted(starts, stop_at, side="left"))
            starts, flat = starts[:keep_starts], flat[:keep_starts]
            clicks = clicks[: int(np.searchsorted(clicks, stop_at, side="left"))]
            end, self._done = stop_at, True
            self._running = False  # as the vendor's: the measurement stops there
            self._finished.notify_all()
        hist_idx, dt = self._window.feed(starts, clicks, end, tag_a=flat)
        keep = hist_idx >= 0
        if self._click == self._start:
            keep &= dt > 0  # a tag is not its own stop
        hist_idx, dt = hist_idx[keep], dt[keep]
        if dt.size:
            self._hist += np.bincount(hist_idx * self._n_bins + dt // self._binwidth,
                                      minlength=self._hist.size).reshape(self._hist.shape)

    # -- vendor API -------------------------------------------------------------------------
    def getData(self) -> np.ndarray:
        """Histograms, shape (product of n_histograms, n_bins); the first dimension's index varies fastest."""
        with self._lock:
            return self._hist.astype(np.int32)

    def getIndex(self) -> np.ndarray:
        """Start time of each bin in ps."""
        return np.arange(self._n_bins, dtype=np.int64) * self._binwidth

    def getHistogramIndex(self) -> np.ndarray:
        """Index per dimension now: 0 .. n-1, -1 waiting for a next tag, -2 waiting for a sync tag."""
        with self._lock:
            return np.array([axis.index() for axis in self._axes], dtype=np.int32)

    def getRollovers(self) -> np.ndarray:
        """Rollovers (next tags in a dimension's last histogram) per dimension since clear."""
        with self._lock:
            return np.array([axis.rollovers for axis in self._axes], dtype=np.uint64)

    def setMaxRollovers(self, max_rollovers: list[int]) -> None:
        """Stop accumulating when any dimension reaches its number of rollovers (0: no limit for it)."""
        limits = [int(n) for n in max_rollovers]
        if len(limits) != len(self._axes) or any(n < 0 for n in limits):
            raise ValueError(f"max_rollovers needs {len(self._axes)} values >= 0 (one per dimension), got {limits}")
        with self._lock:
            self._max_rollovers = limits
