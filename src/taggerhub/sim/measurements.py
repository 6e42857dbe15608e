"""Count-rate measurements with the vendor's constructors, return dtypes and shapes.

``Countrate``, ``Counter`` (with its ``CounterData`` snapshots) and
``Correlation``. Each class processes per-channel sorted timestamp arrays with
NumPy; none loops over tags in Python.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .engine import Chunk
from .enums import CHANNEL_UNUSED
from .handles import TaggerHandle as TimeTaggerBase  # the vendor's annotation, without importing the tagger
from .iterators import IteratorBase
from .pairs import PairWindow
from .signals import PS_PER_S


def positive(name: str, value: int) -> int:
    """Return ``value`` as int, or raise a ValueError naming the argument."""
    value = int(value)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def channel_list(name: str, channels: Any) -> list[int]:
    """Turn a channel argument into a non-empty list, naming it on error."""
    if isinstance(channels, int | np.integer):
        channels = [channels]
    channels = [int(c) for c in channels]
    if not channels:
        raise ValueError(f"{name} needs at least one channel")
    return channels


class Countrate(IteratorBase):
    """Average count rate on one or more channels, in counts per second."""

    def __init__(self, tagger: TimeTaggerBase, channels: list[int]):
        channels = channel_list("Countrate", channels)
        self._counts = np.zeros(len(channels), dtype=np.int64)
        super().__init__(tagger, channels)

    def _on_chunk(self, chunk: Chunk) -> None:
        # The vendor's Countrate "works correctly even when the USB transfer rate or backend processing
        # capabilities are exceeded": an overflow interval's missed events count too.
        missed = chunk.missed or {}
        for i, ch in enumerate(self._channels):
            self._counts[i] += chunk.get(ch).size + missed.get(ch, 0)

    def _on_clear(self) -> None:
        self._counts[:] = 0

    def getData(self) -> np.ndarray:
        """Average count rate in counts per second since the last clear."""
        with self._lock:
            if self._capture_ps == 0:
                return np.zeros(len(self._channels), dtype=np.float64)
            return self._counts * (PS_PER_S / self._capture_ps)

    def getCountsTotal(self) -> np.ndarray:
        """Number of counts per channel since the last clear."""
        with self._lock:
            return self._counts.copy()


class CounterData:
    """A snapshot of a ``Counter``: fully integrated bins, their times and overflow marks."""

    def __init__(self, channels: list[int], counts: np.ndarray, times: np.ndarray, binwidth: int,
                 total: np.ndarray, dropped_bins: int, overflow_mask: np.ndarray | None = None):
        self._channels = np.asarray(channels, dtype=np.int32)
        self._counts = counts.astype(np.int32)
        self._times = times.astype(np.int64)
        self._binwidth = binwidth
        self._total = total.astype(np.uint64)
        self._dropped_bins = int(dropped_bins)
        self._overflow_mask = (np.zeros(self._times.size, dtype=np.int8) if overflow_mask is None
                               else overflow_mask.astype(np.int8))

    # Properties on the class (not instance attributes), so reflection sees them as the vendor's.
    @property
    def size(self) -> int:
        """Number of bins in this snapshot."""
        return int(self._times.size)

    @property
    def dropped_bins(self) -> int:
        """Bins overwritten in the Counter's buffer before this snapshot took them."""
        return self._dropped_bins

    @property
    def overflow(self) -> bool:
        """Whether any bin of the snapshot was integrated during an overflow."""
        return bool(self._overflow_mask.any())

    def getChannels(self) -> np.ndarray:
        """The channels of the rows."""
        return self._channels.copy()

    def getData(self) -> np.ndarray:
        """Counts, shape (channels, size)."""
        return self._counts.copy()

    def getDataNormalized(self) -> np.ndarray:
        """Count rate in Hz, shape (channels, size)."""
        return self._counts * (PS_PER_S / self._binwidth)

    def getFrequency(self, time_scale: int = PS_PER_S) -> np.ndarray:
        """Counts scaled to ``time_scale`` ps (negative: per binwidth)."""
        scale = self._binwidth if time_scale < 0 else time_scale
        return self._counts * (scale / self._binwidth)

    def getDataTotalCounts(self) -> np.ndarray:
        """Total counts per channel since the last clear, without the open bin."""
        return self._total.copy()

    def getIndex(self) -> np.ndarray:
        """Relative time of each bin in ps, starting at 0."""
        return np.arange(self.size, dtype=np.int64) * self._binwidth

    def getTime(self) -> np.ndarray:
        """Absolute tag time of each bin's start in ps."""
        return self._times.copy()

    def getOverflowMask(self) -> np.ndarray:
        """1 for bins that overlap an overflow interval (the engine fell behind and dropped tags), else 0."""
        return self._overflow_mask.copy()


class Counter(IteratorBase):
    """Time trace of the count rate: counts per ``binwidth`` for the last ``n_values`` bins."""

    def __init__(self, tagger: TimeTaggerBase, channels: list[int], binwidth: int = 1000000000, n_values: int = 1):
        channels = channel_list("Counter", channels)
        self._binwidth = positive("binwidth", binwidth)
        self._n_values = positive("n_values", n_values)
        self._ring = np.zeros((len(channels), self._n_values), dtype=np.int64)
        self._ring_time = np.zeros(self._n_values, dtype=np.int64)
        self._ring_overflow = np.zeros(self._n_values, dtype=bool)  # bins that overlap an overflow interval
        self._partial_overflow = False
        self._total = np.zeros(len(channels), dtype=np.int64)
        self._bins_done = 0  # completed bins since clear
        self._unread = 0  # completed bins not yet removed by getDataObject(remove=True)
        self._dropped = 0
        self._partial = np.zeros(len(channels), dtype=np.int64)
        self._partial_ps = 0  # tag time collected into the open bin
        self._partial_begin = 0
        super().__init__(tagger, channels)

    def _describe(self) -> dict[str, Any]:
        return {"binwidth": self._binwidth, "n_values": self._n_values}

    def _on_clear(self) -> None:
        self._ring[:] = 0
        self._ring_overflow[:] = False
        self._partial_overflow = False
        self._total[:] = 0
        self._bins_done = self._unread = self._dropped = 0
        self._partial[:] = 0
        self._partial_ps = 0

    def _on_chunk(self, chunk: Chunk) -> None:
        # Bins are aligned to the measurement's own capture time, not to absolute tag time.
        if self._partial_ps == 0:
            self._partial_begin = chunk.begin_ps
        origin = chunk.begin_ps - self._partial_ps
        span = self._partial_ps + (chunk.end_ps - chunk.begin_ps)
        n_closed = span // self._binwidth
        in_overflow = chunk.missed is not None
        if in_overflow:
            # Dropped tags have no times, so no bin gets them; the total does ("works correctly even when
            # the USB transfer rate or backend processing capabilities are exceeded"), at once.
            self._total += [chunk.missed.get(ch, 0) for ch in self._channels]
        if n_closed == 0:
            for i, ch in enumerate(self._channels):
                self._partial[i] += chunk.get(ch).size
            self._partial_ps = span
            self._partial_overflow |= in_overflow
            return
        # Only the last n_values closed bins are kept, so only their edges are searched: a 1 ns binwidth
        # would otherwise mean 10**7 bins per 10 ms chunk.
        keep = min(n_closed, self._n_values)
        first = n_closed - keep
        edges = origin + np.arange(first, n_closed + 1, dtype=np.int64) * self._binwidth
        kept = np.zeros((len(self._channels), keep), dtype=np.int64)
        closed_total = self._partial.copy()
        partial = np.zeros(len(self._channels), dtype=np.int64)
        for i, ch in enumerate(self._channels):
            tags = chunk.get(ch)
            if tags.size:
                cut = np.searchsorted(tags, edges, side="left")  # O(kept bins * log tags)
                kept[i] = np.diff(cut)  # (the chunk starts at or after the first edge when first == 0)
                closed_total[i] += cut[-1]
                partial[i] = tags.size - cut[-1]
        if first == 0:
            kept[:, 0] += self._partial
        self._total += closed_total
        positions = (self._bins_done + np.arange(first, n_closed)) % self._n_values
        self._ring[:, positions] = kept
        self._ring_overflow[positions] = in_overflow
        if first == 0:
            self._ring_overflow[positions[0]] |= self._partial_overflow
        self._partial_overflow = in_overflow and span > n_closed * self._binwidth
        bin_begin = self._partial_begin + np.arange(first, n_closed, dtype=np.int64) * self._binwidth
        self._ring_time[positions] = bin_begin
        self._bins_done += n_closed
        self._unread += n_closed
        if self._unread > self._n_values:
            self._dropped += self._unread - self._n_values
            self._unread = self._n_values
        self._partial = partial
        self._partial_ps = span - n_closed * self._binwidth
        self._partial_begin = self._partial_begin + n_closed * self._binwidth

    def _last_bins(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``n`` most recent closed bins, oldest first: counts, begin times, overflow marks."""
        positions = (self._bins_done - n + np.arange(n)) % self._n_values
        return self._ring[:, positions], self._ring_time[positions], self._ring_overflow[positions]

    def _layout(self, rolling: bool) -> tuple[np.ndarray, np.ndarray]:
        """Bins in the vendor's order and a mask of the bins that hold integrated data outside overflows."""
        filled = min(self._bins_done, self._n_values)
        valid = np.zeros(self._n_values, dtype=bool)
        if rolling:
            data = np.zeros_like(self._ring)
            counts, _, overflow = self._last_bins(filled)
            data[:, self._n_values - filled:] = counts
            valid[self._n_values - filled:] = ~overflow
            return data, valid
        valid[:filled] = ~self._ring_overflow[:filled]
        return self._ring.copy(), valid

    def getData(self, rolling: bool = True) -> np.ndarray:
        """Counts per bin, shape (channels, n_values); with ``rolling`` the newest bin is last."""
        with self._lock:
            return self._layout(rolling)[0].astype(np.int32)

    def getDataNormalized(self, rolling: bool = True) -> np.ndarray:
        """Count rate per bin in Hz; bins not yet integrated and bins in overflow are NaN (as the vendor's)."""
        with self._lock:
            data, valid = self._layout(rolling)
            rate = data * (PS_PER_S / self._binwidth)
            rate[:, ~valid] = np.nan
            return rate

    def getDataTotalCounts(self) -> np.ndarray:
        """Total counts per channel since the last clear, without the bin being integrated."""
        with self._lock:
            return self._total.astype(np.uint64)

    def getIndex(self) -> np.ndarray:
        """Relative time of each bin in ps, starting at 0."""
        return np.arange(self._n_values, dtype=np.int64) * self._binwidth

    def getDataObject(self, remove: bool = False) -> CounterData:
        """Snapshot of the bins integrated since the last removing call; ``remove`` drops them here."""
        with self._lock:
            counts, times, overflow = self._last_bins(self._unread)
            data = CounterData(self._channels, counts, times, self._binwidth, self._total, self._dropped, overflow)
            if remove:
                self._unread = 0
                self._dropped = 0
            return data


class Correlation(IteratorBase):
    """Histogram of time differences ``t(channel_1) - t(channel_2)``, both signs, centred on zero."""

    def __init__(self, tagger: TimeTaggerBase, channel_1: int, channel_2: int = CHANNEL_UNUSED,
                 binwidth: int = 1000, n_bins: int = 1000):
        channel_1 = int(channel_1)
        channel_2 = channel_1 if int(channel_2) == CHANNEL_UNUSED else int(channel_2)
        self._binwidth = positive("binwidth", binwidth)
        self._n_bins = positive("n_bins", n_bins)
        self._hist = np.zeros(self._n_bins, dtype=np.int64)
        self._half = self._binwidth * self._n_bins // 2
        self._offset = self._half  # dt + offset >= 0 maps to bins
        self._window = PairWindow(-self._half, self._binwidth * self._n_bins - self._half)
        self._n = np.zeros(2, dtype=np.int64)
        super().__init__(tagger, [channel_1, channel_2])

    def _describe(self) -> dict[str, Any]:
        return {"binwidth": self._binwidth, "n_bins": self._n_bins}

    def _on_clear(self) -> None:
        self._hist[:] = 0
        self._n[:] = 0
        self._window.clear()

    def _on_chunk(self, chunk: Chunk) -> None:
        ch1, ch2 = self._channels
        clicks, refs = chunk.get(ch1), chunk.get(ch2)
        self._n += (clicks.size, refs.size)
        _, dt = self._window.feed(refs, clicks, chunk.end_ps)
        if dt.size:
            self._hist += np.bincount((dt + self._offset) // self._binwidth, minlength=self._n_bins)[: self._n_bins]
        if ch1 == ch2 and clicks.size:  # a tag never correlates with itself
            self._hist[self._offset // self._binwidth] -= clicks.size

    def getData(self) -> np.ndarray:
        """Counts per time-difference bin."""
        with self._lock:
            return self._hist.astype(np.int32)

    def getDataNormalized(self) -> np.ndarray:
        """g2(tau) = capture duration / (binwidth * N1 * N2) * histogram; 1 for uncorrelated signals."""
        with self._lock:
            n1, n2 = (int(x) for x in self._n)
            if self._capture_ps == 0 or n1 == 0 or n2 == 0:
                return np.full(self._n_bins, np.nan)
            return self._hist * (self._capture_ps / (self._binwidth * n1 * n2))

    def getIndex(self) -> np.ndarray:
        """Centre of each bin in ps (time of channel_1 minus time of channel_2)."""
        return np.arange(self._n_bins, dtype=np.int64) * self._binwidth - self._offset + self._binwidth // 2


class CorrelationPairsData:
    """Snapshot of a CorrelationPairs: histograms for every ordered channel pair."""

    def __init__(self, hist: np.ndarray, self_pairs: np.ndarray, n: np.ndarray, capture_ps: int, binwidth: int,
                 zero_bin: int | None, index: np.ndarray):
        self._hist, self._self_pairs, self._n = hist.copy(), self_pairs.copy(), n.copy()
        self._capture_ps, self._binwidth, self._zero_bin, self._index = capture_ps, binwidth, zero_bin, index

    def getCounts(self, exclude_self_coincidences: bool = True) -> np.ndarray:
        """Counts, shape (channels, channels, n_bins): [i, j] histograms t(channel i) - t(channel j)."""
        counts = self._hist.copy()
        if not exclude_self_coincidences and self._zero_bin is not None:
            for i, n in enumerate(self._self_pairs):
                counts[i, i, self._zero_bin] += n
        return counts.astype(np.int32)

    def getG2(self, exclude_self_coincidences: bool = True) -> np.ndarray:
        """Counts scaled by capture duration / (binwidth * N_i * N_j); 1 for uncorrelated signals."""
        counts = self.getCounts(exclude_self_coincidences).astype(np.float64)
        norm = np.outer(self._n, self._n).astype(np.float64) * self._binwidth
        with np.errstate(divide="ignore", invalid="ignore"):
            return counts * (self._capture_ps / norm)[:, :, None]

    def getIndex(self) -> np.ndarray:
        """Centre of each bin in ps."""
        return self._index.copy()


class CorrelationPairs(IteratorBase):
    """Correlation histograms between every pair of ``channels`` (both signs), in one measurement."""

    def __init__(self, tagger: TimeTaggerBase, channels: list[int], binwidth: int = 1000, n_bins: int = 1000):
        channels = channel_list("CorrelationPairs", channels)
        if len(set(channels)) != len(channels):
            raise ValueError(f"channels must be distinct, got {channels}")
        self._binwidth = positive("binwidth", binwidth)
        self._n_bins = positive("n_bins", n_bins)
        self._offset = self._binwidth * self._n_bins // 2
        k = len(channels)
        self._hist = np.zeros((k, k, self._n_bins), dtype=np.int64)
        self._self_pairs = np.zeros(k, dtype=np.int64)
        self._n = np.zeros(k, dtype=np.int64)
        lo, hi = -self._offset, self._binwidth * self._n_bins - self._offset
        self._lo, self._hi = lo, hi
        # t(i) - t(j) and t(j) - t(i) are the same pairs mirrored: one window per unordered pair serves both,
        # widened to hold both ranges ([lo, hi) and its mirror (-hi, -lo]).
        self._windows = {(i, j): PairWindow(lo, hi) if i == j else PairWindow(min(lo, 1 - hi), max(hi, 1 - lo))
                         for i in range(k) for j in range(i, k)}
        super().__init__(tagger, channels)

    def _describe(self) -> dict[str, Any]:
        return {"binwidth": self._binwidth, "n_bins": self._n_bins}

    def _on_clear(self) -> None:
        self._hist[:] = 0
        self._self_pairs[:] = 0
        self._n[:] = 0
        for window in self._windows.values():
            window.clear()

    def _on_chunk(self, chunk: Chunk) -> None:
        tags = [chunk.get(c) for c in self._channels]
        self._n += [t.size for t in tags]
        for (i, j), window in self._windows.items():
            _, dt = window.feed(tags[j], tags[i], chunk.end_ps)  # t(i) - t(j)
            if not dt.size:
                continue
            if i == j:
                self._add(i, j, dt)
                continue
            self._add(i, j, dt[(dt >= self._lo) & (dt < self._hi)])
            mirrored = -dt
            self._add(j, i, mirrored[(mirrored >= self._lo) & (mirrored < self._hi)])
        zero = self._zero_bin()
        if zero is not None:
            for i, t in enumerate(tags):
                self._hist[i, i, zero] -= t.size  # a tag is not its own partner...
                self._self_pairs[i] += t.size  # ...unless the caller asks for it

    def _add(self, i: int, j: int, dt: np.ndarray) -> None:
        if dt.size:
            bins = (dt + self._offset) // self._binwidth
            self._hist[i, j] += np.bincount(bins, minlength=self._n_bins)[: self._n_bins]

    def _zero_bin(self) -> int | None:
        zero = self._offset // self._binwidth
        return zero if 0 <= zero < self._n_bins else None

    def getIndex(self) -> np.ndarray:
        """Centre of each bin in ps."""
        return np.arange(self._n_bins, dtype=np.int64) * self._binwidth - self._offset + self._binwidth // 2

    def getDataObject(self) -> CorrelationPairsData:
        """Snapshot of all pair histograms."""
        with self._lock:
            return CorrelationPairsData(self._hist, self._self_pairs, self._n, self._capture_ps, self._binwidth,
                                        self._zero_bin(), self.getIndex())
