"""``FrequencyCounter``: phase and frequency of periodic inputs at evenly spaced sampling times.

Around each sampling time the tags within ``fitting_window`` are fitted with a
line (accumulated period count against time): the value at the sampling time
is the phase in cycles, the slope the instantaneous frequency. Sums for the
fits come from prefix sums over the tags, so all sampling points of a chunk
are fitted at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Chunk
from .iterators import IteratorBase
from .measurements import channel_list, positive
from .signals import PS_PER_S

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase


class FrequencyCounterData:
    """Snapshot of a FrequencyCounter: per channel and sampling point."""

    def __init__(self, times: np.ndarray, index: np.ndarray, phase: np.ndarray, instantaneous: np.ndarray,
                 sampling_interval: int, event_divider: int, channels_last_dim: bool):
        self._times, self._index = times, index
        self._phase = phase * event_divider  # (channels, size), cycles since the first tag after start
        self._inst = instantaneous * event_divider
        self._interval = sampling_interval
        self._last_dim = bool(channels_last_dim)

    def _layout(self, values: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(values.T) if self._last_dim else values

    @property
    def size(self) -> int:
        """Number of sampling points."""
        return int(self._times.size)

    @property
    def sampling_interval(self) -> int:
        """Sampling interval in ps."""
        return self._interval

    @property
    def sample_offset(self) -> int:
        """Index of the first sampling point in this object."""
        return int(self._index[0]) if self._index.size else 0

    @property
    def overflow_samples(self) -> int:
        """Sampling points hit by an overflow (none in the simulation)."""
        return 0

    @property
    def align_to_reference(self) -> bool:
        """Whether the sampling grid follows the reference clock (not in the simulation)."""
        return False

    @property
    def channels_last_dim(self) -> bool:
        """Whether channels are the last dimension of the arrays."""
        return self._last_dim

    def getIndex(self) -> np.ndarray:
        """Index of each sampling point (1 for the first after start)."""
        return self._index.copy()

    def getTime(self) -> np.ndarray:
        """Tag time of each sampling point in ps."""
        return self._times.copy()

    def getPeriodsCount(self) -> np.ndarray:
        """Whole periods counted at each sampling point."""
        return self._layout(np.floor(self._phase).astype(np.int64))

    def getPeriodsFraction(self) -> np.ndarray:
        """Fraction of the current period at each sampling point."""
        return self._layout(self._phase - np.floor(self._phase))

    def getPhase(self, reference_frequency: float = 0.0) -> np.ndarray:
        """Phase in cycles relative to a reference at ``reference_frequency`` Hz starting at the first point."""
        if self.size == 0:
            return self._layout(self._phase)
        base = np.floor(self._phase[:, :1])
        elapsed = (self._times - self._times[0]) / PS_PER_S
        return self._layout(self._phase - base - float(reference_frequency) * elapsed[None, :])

    def getFrequency(self, time_scale: int = PS_PER_S) -> np.ndarray:
        """Average frequency between consecutive sampling points (NaN at the first), per ``time_scale`` ps."""
        scale = self._interval if time_scale < 0 else time_scale
        freq = np.full(self._phase.shape, np.nan)
        freq[:, 1:] = np.diff(self._phase, axis=1) * (scale / self._interval)
        return self._layout(freq)

    def getFrequencyInstantaneous(self) -> np.ndarray:
        """Slope of the fit at each sampling point in Hz."""
        return self._layout(self._inst)

    def getOverflowMask(self) -> np.ndarray:
        """1 where an overflow invalidated a value (never in the simulation)."""
        return self._layout(np.zeros(self._phase.shape, dtype=np.int8))


class FrequencyCounter(IteratorBase):
    """Phase and frequency of ``channels`` every ``sampling_interval`` ps, fitted over ``fitting_window`` ps."""

    def __init__(self, tagger: TimeTaggerBase, channels: list[int], sampling_interval: int, fitting_window: int,
                 n_values: int = 0):
        self._chans = channel_list("channels", channels)
        self._interval = positive("sampling_interval", sampling_interval)
        self._window = positive("fitting_window", fitting_window)
        self._n_values = int(n_values)
        if self._n_values < 0:
            raise ValueError(f"n_values must be >= 0, got {n_values}")
        self._reset_state()
        super().__init__(tagger, self._chans)

    def _reset_state(self) -> None:
        k = len(self._chans)
        self._origin: int | None = None
        self._next = 1
        self._counted = np.zeros(k, dtype=np.int64)
        self._buf_t = [np.empty(0, dtype=np.int64) for _ in range(k)]
        self._buf_n = [np.empty(0, dtype=np.int64) for _ in range(k)]
        self._times: list[np.ndarray] = []
        self._phase: list[np.ndarray] = []
        self._inst: list[np.ndarray] = []

    def _describe(self) -> dict[str, Any]:
        return {"sampling_interval": self._interval, "fitting_window": self._window, "n_values": self._n_values}

    def _on_clear(self) -> None:
        self._reset_state()

    def _on_chunk(self, chunk: Chunk) -> None:
        if self._origin is None:
            self._origin = chunk.begin_ps
        half = self._window // 2
        for i, ch in enumerate(self._chans):
            tags = chunk.get(ch)
            self._buf_t[i] = np.concatenate([self._buf_t[i], tags])
            self._buf_n[i] = np.concatenate([self._buf_n[i], self._counted[i] + np.arange(tags.size)])
            self._counted[i] += tags.size
        # Sampling points whose fitting window has fully passed.
        last = (chunk.end_ps - half - 1 - self._origin) // self._interval
        if last >= self._next:
            ks = np.arange(self._next, last + 1, dtype=np.int64)
            points = self._origin + ks * self._interval
            phase = np.empty((len(self._chans), ks.size))
            inst = np.empty_like(phase)
            for i in range(len(self._chans)):
                phase[i], inst[i] = self._fit(self._buf_t[i], self._buf_n[i], points, half)
            self._times.append(points)
            self._phase.append(phase)
            self._inst.append(inst)
            self._next = int(last) + 1
            self._trim()
        keep_from = self._origin + self._next * self._interval - half
        for i in range(len(self._chans)):
            cut = int(np.searchsorted(self._buf_t[i], keep_from, side="left"))
            self._buf_t[i], self._buf_n[i] = self._buf_t[i][cut:], self._buf_n[i][cut:]

    @staticmethod
    def _fit(times: np.ndarray, counts: np.ndarray, points: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
        """Least-squares line count = a + b (t - point) over each window; return (a, b in Hz)."""
        if times.size == 0:
            nan = np.full(points.size, np.nan)
            return nan, nan
        base = float(times[0])
        x = times - base
        y = counts.astype(np.float64)
        ones = np.ones(x.size, dtype=np.float64)
        prefix = [np.concatenate([[0.0], np.cumsum(v)]) for v in (ones, x, x * x, y, x * y)]
        lo = np.searchsorted(times, points - half, side="left")
        hi = np.searchsorted(times, points + half, side="right")
        n, sx, sxx, sy, sxy = (p[hi] - p[lo] for p in prefix)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
            intercept = (sy - slope * sx) / n
        at_point = intercept + slope * (points - base)
        bad = n < 2
        at_point[bad] = np.nan
        slope[bad] = np.nan
        return at_point, slope * PS_PER_S

    def _trim(self) -> None:
        if self._n_values <= 0:
            return
        total = sum(t.size for t in self._times)
        if total > self._n_values:
            times, phase, inst = self._joined()
            drop = total - self._n_values
            self._times, self._phase, self._inst = [times[drop:]], [phase[:, drop:]], [inst[:, drop:]]

    def _joined(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = len(self._chans)
        if not self._times:
            return np.empty(0, dtype=np.int64), np.empty((k, 0)), np.empty((k, 0))
        return np.concatenate(self._times), np.concatenate(self._phase, axis=1), np.concatenate(self._inst, axis=1)

    def getDataObject(self, event_divider: int = 1, remove: bool = False,
                      channels_last_dim: bool = False) -> FrequencyCounterData:
        """Snapshot of the sampling points so far; ``remove`` drops them from the buffer."""
        with self._lock:
            times, phase, inst = self._joined()
            index = (times - (self._origin or 0)) // self._interval
            data = FrequencyCounterData(times, index, phase, inst, self._interval, int(event_divider),
                                        channels_last_dim)
            if remove:
                self._times, self._phase, self._inst = [], [], []
            return data
