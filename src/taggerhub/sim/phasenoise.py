"""``PhaseNoise`` and ``PhaseNoiseData``: the phase noise of a periodic signal from its time tags.

As the vendor's docstring describes it: Welch's method on the tags' time errors,
with sequences of ``NFFT = 4 * samples_per_octave`` tags overlapping by half,
each with its linear trend (phase and frequency offset) removed and a Hann
window applied; of each FFT only the upper half is kept (one octave, with
``samples_per_octave`` samples), and the octaves below come from the same
procedure on tags averaged in adjacent pairs, recursively. Every level runs as
a stream, so memory stays bounded whatever the acquisition time.

Units: a level's power spectral density ``S_x(f)`` of the time error x (s²/Hz,
one-sided) is turned into the single-sideband phase noise
``L(f) = (2 pi f0)² S_x(f) / 2`` in dBc/Hz, with ``f0`` the measured carrier
frequency; ``getIntegratedJitter`` integrates ``S_x`` back over an offset range
(white time jitter sigma gives ``L = 4 pi² f0 sigma²``, and sigma again over
the whole band).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Chunk
from .iterators import IteratorBase
from .measurements import positive

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase

PS = 1e-12


class _Level:
    """One octave: samples every ``2**depth`` periods, kept as float offsets (ps) from an integer origin."""

    def __init__(self, depth: int, nfft: int):
        self.depth, self.nfft, self.hop = depth, nfft, nfft // 2
        self.origin = 0
        self.values = np.zeros(0)
        self.psd_sum = np.zeros(nfft // 4)  # sum over sequences of |FFT|² at the kept bins, in ps²
        self.sequences = 0

    def add(self, origin: int, values: np.ndarray) -> None:
        if self.values.size == 0:
            self.origin, self.values = origin, values
        else:
            self.values = np.concatenate([self.values, values + float(origin - self.origin)])

    def run_sequences(self, plan: _Plan) -> None:
        """Add every complete sequence to the averaged spectrum and drop the samples no later one needs."""
        count = (self.values.size - self.nfft) // self.hop + 1
        if count <= 0:
            return
        frames = np.lib.stride_tricks.sliding_window_view(self.values, self.nfft)[:: self.hop][:count]
        spectrum = plan.kept_spectrum(frames)
        self.psd_sum += (spectrum.real**2 + spectrum.imag**2).sum(axis=0)
        self.sequences += count
        drop = count * self.hop
        shift = float(np.floor(self.values[drop])) if drop < self.values.size else 0.0
        self.values = self.values[drop:] - shift
        self.origin += int(shift)


class _Plan:
    """Hann window and detrending for sequences of ``nfft`` samples, computed once.

    The FFT is linear, so the fitted line ``mean + slope * (k - k_mean)`` is taken off in the kept bins
    (the FFTs of the window and of the windowed ramp, once) rather than from every sample.
    """

    def __init__(self, nfft: int):
        k = np.arange(nfft)
        self.window = 0.5 - 0.5 * np.cos(2 * np.pi * k / nfft)  # periodic Hann
        ramp = k - k.mean()
        self.fit = np.stack([np.full(nfft, 1.0 / nfft), ramp / (ramp @ ramp)], axis=1)  # -> (mean, slope)
        self.kept = slice(nfft // 4, nfft // 2)  # the upper half: one octave
        self.window_kept = np.fft.rfft(self.window)[self.kept]
        self.ramp_kept = np.fft.rfft(self.window * ramp)[self.kept]

    def kept_spectrum(self, frames: np.ndarray) -> np.ndarray:
        """FFT of each windowed sequence with its least-squares line removed, at the kept bins."""
        line = frames @ self.fit  # least-squares mean and slope of every sequence at once
        spectrum = np.fft.rfft(frames * self.window, axis=1)[:, self.kept]
        return spectrum - line[:, :1] * self.window_kept - line[:, 1:] * self.ramp_kept


class PhaseNoiseData:
    """A snapshot of a ``PhaseNoise``: offsets, phase noise, averaged sequences, carrier frequency."""

    def __init__(self, offsets: np.ndarray, sx: np.ndarray, widths: np.ndarray, averaged: np.ndarray,
                 frequency: float):
        self._offsets, self._sx, self._widths, self._averaged = offsets, sx, widths, averaged
        self._frequency = frequency

    def getOffset(self) -> np.ndarray:
        """Frequency offset of each spectral sample in Hz, ascending."""
        return self._offsets.copy()

    def getPhaseNoise(self) -> np.ndarray:
        """Single-sideband phase noise of each spectral sample in dBc/Hz."""
        with np.errstate(divide="ignore"):
            return 10 * np.log10((2 * np.pi * self._frequency) ** 2 * self._sx / 2)

    def getAveragedSequences(self) -> np.ndarray:
        """Number of sequences averaged for each spectral sample."""
        return self._averaged.copy()

    def getFrequency(self) -> float:
        """Average carrier frequency in Hz (nan before two tags)."""
        return float(self._frequency)

    def getIntegratedJitter(self, lower_bound: float = 12e3, upper_bound: float = -1) -> float:
        """RMS jitter in seconds from the phase noise between the offsets (Hz); a negative upper bound: Nyquist."""
        if not self._offsets.size:
            return float("nan")  # nothing measured yet (as getFrequency)
        upper = self._frequency / 2 if upper_bound < 0 else float(upper_bound)
        lower = float(lower_bound)
        if not upper > lower >= 0:
            raise ValueError(f"need 0 <= lower_bound < upper_bound, got {lower_bound} and {upper_bound}")
        low_edges, high_edges = self._offsets - self._widths / 2, self._offsets + self._widths / 2
        covered = np.clip(np.minimum(high_edges, upper) - np.maximum(low_edges, lower), 0.0, None)
        return float(np.sqrt(np.sum(self._sx * covered)))


class PhaseNoise(IteratorBase):
    """Phase noise of the periodic signal on ``channel``, ``samples_per_octave`` spectral samples per octave."""

    def __init__(self, tagger: TimeTaggerBase, channel: int, samples_per_octave: int = 32):
        self._spo = positive("samples_per_octave", samples_per_octave)
        self._nfft = 4 * self._spo
        self._plan = _Plan(self._nfft)
        self._channel = int(channel)
        self._levels: list[_Level] = []
        self._spares: list[tuple[int, np.ndarray]] = []  # per level: (origin, a sample awaiting its pair)
        self._first: int | None = None
        self._last: int | None = None
        self._tags = 0
        super().__init__(tagger, [self._channel])

    def _describe(self) -> dict[str, Any]:
        return {"channel": self._channel, "samples_per_octave": self._spo}

    def _on_clear(self) -> None:
        self._levels, self._spares = [], []
        self._first = self._last = None
        self._tags = 0

    def _level(self, depth: int) -> _Level:
        while len(self._levels) <= depth:
            self._levels.append(_Level(len(self._levels), self._nfft))
            self._spares.append((0, np.zeros(0)))
        return self._levels[depth]

    def _on_chunk(self, chunk: Chunk) -> None:
        times = chunk.get(self._channel)
        if not times.size:
            return
        if self._first is None:
            self._first = int(times[0])
        self._last, self._tags = int(times[-1]), self._tags + times.size
        origin, values, depth = int(times[0]), (times - times[0]).astype(np.float64), 0
        while values.size:  # each level feeds the averages of adjacent pairs of its samples to the next
            level = self._level(depth)
            level.add(origin, values)
            spare_origin, spare = self._spares[depth]
            if spare.size:
                values = np.concatenate([spare + float(spare_origin - origin), values])
            even = values.size - values.size % 2
            self._spares[depth] = (origin, values[even:])  # an odd sample waits for its partner
            values = (values[0:even:2] + values[1:even:2]) * 0.5
            level.run_sequences(self._plan)
            depth += 1

    def getDataObject(self) -> PhaseNoiseData:
        """A snapshot of the spectrum accumulated so far."""
        with self._lock:
            frequency = float("nan")
            if self._tags >= 2 and self._last != self._first:
                frequency = (self._tags - 1) / ((self._last - self._first) * PS)
            offsets, sx, widths, averaged = [], [], [], []
            bins = np.arange(self._nfft // 4, self._nfft // 2)
            for level in reversed(self._levels):  # lowest octave first
                if not level.sequences:
                    continue
                rate = frequency / 2**level.depth  # samples per second at this level
                offsets.append(bins * rate / self._nfft)
                widths.append(np.full(bins.size, rate / self._nfft))
                # One-sided density: 2 |X|² / (rate * sum w²), the mean over sequences, ps² -> s².
                sx.append(2 * level.psd_sum / level.sequences / (rate * np.sum(self._plan.window ** 2)) * PS**2)
                averaged.append(np.full(bins.size, level.sequences, dtype=np.int64))
            empty = np.zeros(0)
            return PhaseNoiseData(*(np.concatenate(parts) if parts else empty.copy()
                                    for parts in (offsets, sx, widths)),
                                  np.concatenate(averaged) if averaged else np.zeros(0, dtype=np.int64), frequency)
