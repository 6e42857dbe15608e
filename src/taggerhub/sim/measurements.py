"""Simulated measurements with the vendor's constructors, return dtypes and shapes.

Each class processes per-channel sorted timestamp arrays with NumPy; none
loops over tags in Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Chunk
from .iterators import IteratorBase
from .signals import PS_PER_S

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase


def _positive(name: str, value: int) -> int:
    value = int(value)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


class Countrate(IteratorBase):
    """Average count rate on one or more channels, in counts per second."""

    def __init__(self, tagger: TimeTaggerBase, channels: list[int]):
        channels = list(channels)
        if not channels:
            raise ValueError("Countrate needs at least one channel")
        self._counts = np.zeros(len(channels), dtype=np.int64)
        super().__init__(tagger, channels)

    def _on_chunk(self, chunk: Chunk) -> None:
        for i, ch in enumerate(self._channels):
            self._counts[i] += chunk.get(ch).size

    def _on_clear(self) -> None:
        self._counts[:] = 0

    def getData(self) -> np.ndarray:
        """Average count rate in counts per second."""
        with self._lock:
            if self._capture_ps == 0:
                return np.zeros(len(self._channels), dtype=np.float64)
            return self._counts * (PS_PER_S / self._capture_ps)

    def getCountsTotal(self) -> np.ndarray:
        """Number of counts per channel since the last clear."""
        with self._lock:
            return self._counts.astype(np.int32)


class Counter(IteratorBase):
    """Time trace of the count rate: counts per ``binwidth`` for the last ``n_values`` bins."""

    def __init__(self, tagger: TimeTaggerBase, channels: list[int], binwidth: int = 1000000000, n_values: int = 1):
        channels = list(channels)
        if not channels:
            raise ValueError("Counter needs at least one channel")
        self._binwidth = _positive("binwidth", binwidth)
        self._n_values = _positive("n_values", n_values)
        self._ring = np.zeros((len(channels), self._n_values), dtype=np.int64)
        self._bins_done = 0  # completed bins since clear
        self._partial = np.zeros(len(channels), dtype=np.int64)
        self._partial_ps = 0  # tag time collected into the open bin
        super().__init__(tagger, channels)

    def _describe(self) -> dict[str, Any]:
        return {"binwidth": self._binwidth, "n_values": self._n_values}

    def _on_clear(self) -> None:
        self._ring[:] = 0
        self._bins_done = 0
        self._partial[:] = 0
        self._partial_ps = 0

    def _on_chunk(self, chunk: Chunk) -> None:
        # Bins are aligned to the measurement's own capture time, not to absolute tag time.
        origin = chunk.begin_ps - self._partial_ps
        span = self._partial_ps + (chunk.end_ps - chunk.begin_ps)
        n_closed = span // self._binwidth
        counts = np.zeros((len(self._channels), n_closed + 1), dtype=np.int64)
        for i, ch in enumerate(self._channels):
            idx = (chunk.get(ch) - origin) // self._binwidth
            counts[i] = np.bincount(idx, minlength=n_closed + 1)[: n_closed + 1]
        counts[:, 0] += self._partial
        if n_closed:
            closed = counts[:, :n_closed][:, -self._n_values:]
            positions = (self._bins_done + np.arange(n_closed)[-closed.shape[1]:]) % self._n_values
            self._ring[:, positions] = closed
            self._bins_done += n_closed
        self._partial = counts[:, n_closed]
        self._partial_ps = span - n_closed * self._binwidth

    def _ordered(self) -> np.ndarray:
        shift = self._bins_done % self._n_values
        data = np.roll(self._ring, -shift, axis=1)
        if self._bins_done < self._n_values:
            data = np.concatenate(
                [np.zeros((len(self._channels), self._n_values - self._bins_done), dtype=np.int64),
                 self._ring[:, : self._bins_done]], axis=1,
            )
        return data

    def getData(self, rolling: bool = True) -> np.ndarray:
        """Counts per bin, shape (channels, n_values), oldest bin first when ``rolling``."""
        with self._lock:
            data = self._ordered() if rolling else self._ring.copy()
            return data.astype(np.int32)

    def getDataNormalized(self, rolling: bool = True) -> np.ndarray:
        """Count rate per bin in counts per second."""
        with self._lock:
            data = self._ordered() if rolling else self._ring
            return data * (PS_PER_S / self._binwidth)

    def getDataTotalCounts(self) -> np.ndarray:
        """Total counts per channel since the last clear, including the open bin."""
        with self._lock:
            filled = min(self._bins_done, self._n_values)
            return (self._ordered()[:, self._n_values - filled:].sum(axis=1) + self._partial).astype(np.uint64)

    def getIndex(self) -> np.ndarray:
        """Start time of each bin in picoseconds."""
        return np.arange(self._n_values, dtype=np.int64) * self._binwidth


class Correlation(IteratorBase):
    """Histogram of time differences between clicks on two channels (auto- or cross-correlation)."""

    def __init__(self, tagger: TimeTaggerBase, channel_1: int, channel_2: int = -134217728,
                 binwidth: int = 1000, n_bins: int = 1000):
        from .enums import CHANNEL_UNUSED

        channel_2 = channel_1 if channel_2 == CHANNEL_UNUSED else channel_2
        self._binwidth = _positive("binwidth", binwidth)
        self._n_bins = _positive("n_bins", n_bins)
        self._hist = np.zeros(self._n_bins, dtype=np.int64)
        self._half = self._binwidth * self._n_bins // 2
        self._tail_1 = np.empty(0, dtype=np.int64)
        self._tail_2 = np.empty(0, dtype=np.int64)
        super().__init__(tagger, [channel_1, channel_2])

    def _describe(self) -> dict[str, Any]:
        return {"binwidth": self._binwidth, "n_bins": self._n_bins}

    def _on_clear(self) -> None:
        self._hist[:] = 0
        self._tail_1 = self._tail_1[:0]
        self._tail_2 = self._tail_2[:0]

    def _on_chunk(self, chunk: Chunk) -> None:
        ch1, ch2 = self._channels
        new_1, new_2 = chunk.get(ch1), chunk.get(ch2)
        all_1 = np.concatenate([self._tail_1, new_1])
        all_2 = np.concatenate([self._tail_2, new_2])
        # Pairs (t1, t2) with |t2 - t1| < half-range, counted once: those with a new t2 against all t1,
        # plus new t1 against the old t2 tail.
        self._accumulate(all_1, new_2)
        self._accumulate(new_1, self._tail_2)
        horizon = chunk.end_ps - self._half
        self._tail_1 = all_1[np.searchsorted(all_1, horizon):]
        self._tail_2 = all_2[np.searchsorted(all_2, horizon):]

    def _accumulate(self, starts: np.ndarray, stops: np.ndarray) -> None:
        if starts.size == 0 or stops.size == 0:
            return
        lo = np.searchsorted(starts, stops - self._half, side="right")
        hi = np.searchsorted(starts, stops + self._half, side="right")
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return
        stop_rep = np.repeat(stops, counts)
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        start_idx = np.repeat(lo, counts) + offsets
        dt = stop_rep - starts[start_idx]
        bins = (dt + self._half) // self._binwidth
        bins = bins[(bins >= 0) & (bins < self._n_bins)]
        self._hist += np.bincount(bins, minlength=self._n_bins)[: self._n_bins]

    def getData(self) -> np.ndarray:
        """Counts per time-difference bin."""
        with self._lock:
            return self._hist.astype(np.int32)

    def getDataNormalized(self) -> np.ndarray:
        """Histogram normalised so that uncorrelated signals give 1."""
        with self._lock:
            duration = self._capture_ps
            if duration == 0:
                return np.zeros(self._n_bins)
            # Normalisation needs the single rates; estimate them from the totals kept by the tails.
            return self._hist / max(1.0, self._hist.mean())

    def getIndex(self) -> np.ndarray:
        """Centre of each bin in picoseconds (time of channel_2 minus channel_1)."""
        return (np.arange(self._n_bins, dtype=np.int64) * self._binwidth - self._half + self._binwidth // 2)
