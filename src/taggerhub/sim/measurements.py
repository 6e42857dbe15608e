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
from .pairs import EMPTY, PairWindow
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
        self._hi = self._binwidth * self._n_bins - self._offset  # t(i) - t(j) in [-offset, hi)
        self._reach = max(self._hi, self._offset + 1)  # pairs closer than this, in either order, are counted
        self._label_bits = max(1, (k - 1).bit_length())
        self._tail = (EMPTY, EMPTY)  # (times, channel index) of tags that can still pair with later ones
        super().__init__(tagger, channels)

    def _describe(self) -> dict[str, Any]:
        return {"binwidth": self._binwidth, "n_bins": self._n_bins}

    def _on_clear(self) -> None:
        self._hist[:] = 0
        self._self_pairs[:] = 0
        self._n[:] = 0
        self._tail = (EMPTY, EMPTY)

    def _on_chunk(self, chunk: Chunk) -> None:
        tags = [chunk.get(c) for c in self._channels]
        self._n += [t.size for t in tags]
        if self._zero_bin() is not None:
            self._self_pairs += [t.size for t in tags]  # a tag is not its own partner unless the caller asks
        times, labels, n_old = self._merged(tags)
        flat = self._pair_bins(times, labels, n_old)
        if flat.size:
            self._hist += np.bincount(flat, minlength=self._hist.size).reshape(self._hist.shape)
        keep = int(np.searchsorted(times, chunk.end_ps - self._reach, side="right"))
        self._tail = (times[keep:], labels[keep:])

    def _merged(self, tags: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, int]:
        """The kept tail, then this chunk's tags of every channel in time order, with their channel index."""
        tail_times, tail_labels = self._tail
        new = [t for t in tags if t.size]
        if not new:
            return tail_times, tail_labels, tail_times.size
        base = min(int(t[0]) for t in new)
        bits = self._label_bits
        keys = np.concatenate([(t - base) << bits | i for i, t in enumerate(tags) if t.size])
        keys.sort(kind="stable")  # timsort: each channel is one sorted run, so this is a merge
        times = np.concatenate([tail_times, (keys >> bits) + base])
        labels = np.concatenate([tail_labels, keys & ((1 << bits) - 1)])
        return times, labels, tail_times.size

    def _pair_bins(self, times: np.ndarray, labels: np.ndarray, n_old: int) -> np.ndarray:
        """Flat histogram index of both orders of every pair closer than the reach whose later tag is new.

        Walks the merged tags: lag m pairs tag k with tag k + m; a tag whose lag-m partner is already out of
        reach has no later partner either, so each round keeps only the tags still pairing. No binary search:
        about one step per pair plus one per tag, where one window per channel pair searched every tag.
        """
        k, n_bins, width = len(self._channels), self._n_bins, self._binwidth
        parts = []
        earlier = np.arange(max(times.size - 1, 0), dtype=np.int64)
        for lag in range(1, times.size):  # bounded: every round drops at least the last candidate
            later = earlier + lag
            d = times[later] - times[earlier]
            close = d < self._reach
            if not close.any():
                break
            earlier, later, d = earlier[close], later[close], d[close]
            new = later >= n_old
            if new.any():
                i, j, dn = labels[later[new]], labels[earlier[new]], d[new]
                forward = dn < self._hi  # t(i) - t(j) = d
                parts.append((i[forward] * k + j[forward]) * n_bins + (dn[forward] + self._offset) // width)
                backward = dn <= self._offset  # t(j) - t(i) = -d
                parts.append((j[backward] * k + i[backward]) * n_bins
                              + (self._offset - dn[backward]) // width)
            earlier = earlier[earlier < times.size - lag - 1]
        return np.concatenate(parts) if parts else EMPTY

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
