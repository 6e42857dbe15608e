"""Clock analysis: ``FrequencyStability`` (Allan, modified Allan, Hadamard deviations) and ``PulsePerSecondMonitor``.

``FrequencyStability`` follows the vendor's docstring (IEEE 1139, the NIST Handbook of Frequency
Stability Analysis): phase samples ``t`` are the means of ``average`` consecutive timestamps, and each
deviation is the RMS of its overlapping error samples, e.g. ``t_i - 2 t_{i+n} + t_{i+2n}`` for ADEV.
Choices where the docstrings leave room: a step ``n`` counts phase samples, so ``tau_n = n * tau_0``
with ``tau_0`` the measured spacing of the phase samples (``average`` signal periods); a deviation
without enough samples for its step is NaN; times and deviations are in seconds (or pp1).

``PulsePerSecondMonitor`` pairs each reference pulse with the nearest pulse of every signal channel
within half a period. Offsets are in seconds, as the other double-valued times here.
"""

from __future__ import annotations

import csv
import datetime as _dt
import time
from typing import Any

import numpy as np

from .engine import Chunk
from .handles import TaggerHandle as TimeTaggerBase  # the vendor's annotation, without importing the tagger
from .iterators import IteratorBase
from .measurements import channel_list, positive
from .signals import PS_PER_S


def _second_differences(x: np.ndarray, n: int) -> np.ndarray:
    return x[: x.size - 2 * n] - 2 * x[n: x.size - n] + x[2 * n:]


class FrequencyStabilityData:
    """A snapshot of a ``FrequencyStability``: deviations per step and the phase/frequency traces."""

    def __init__(self, phase_s: np.ndarray, steps: np.ndarray, trace_len: int, average: int):
        self._x = phase_s  # phase samples in s, relative to the first timestamp
        self._steps = steps
        self._trace_len = trace_len
        self._average = average
        self._tau0 = float(np.mean(np.diff(phase_s))) if phase_s.size > 1 else float("nan")

    def _per_step(self, minimum: int, deviation: Any) -> np.ndarray:
        out = np.full(self._steps.size, np.nan)
        for k, n in enumerate(self._steps.tolist()):
            if n >= 1 and self._x.size >= minimum * n + 1:
                out[k] = deviation(int(n), n * self._tau0)
        return out

    def getTau(self) -> np.ndarray:
        """tau of each step: the step times the measured spacing of the phase samples, in s."""
        return self._steps * self._tau0

    def getADEV(self) -> np.ndarray:
        """Overlapping Allan deviation."""
        x = self._x
        return self._per_step(2, lambda n, tau: np.sqrt(np.mean(_second_differences(x, n) ** 2) / (2 * tau**2)))

    def getMDEV(self) -> np.ndarray:
        """Modified overlapping Allan deviation: second differences averaged over n before the RMS."""
        x = self._x

        def mdev(n: int, tau: float) -> float:
            d = _second_differences(x, n)
            if d.size < n:
                return float("nan")
            sums = np.convolve(d, np.ones(n), mode="valid")  # sum over j..j+n-1
            return float(np.sqrt(np.mean(sums**2) / (2 * n**2 * tau**2)))

        return self._per_step(3, mdev)

    def getHDEV(self) -> np.ndarray:
        """Overlapping Hadamard deviation (third differences), scaled to match ADEV for white period noise."""
        x = self._x

        def hdev(n: int, tau: float) -> float:
            d = x[3 * n:] - 3 * x[2 * n: x.size - n] + 3 * x[n: x.size - 2 * n] - x[: x.size - 3 * n]
            return float(np.sqrt(np.mean(d**2) / (6 * tau**2)))

        return self._per_step(3, hdev)

    def getSTDD(self) -> np.ndarray:
        """Standard deviation of the spans t_{i+n} - t_i, in s."""
        x = self._x
        return self._per_step(1, lambda n, tau: float(np.std(x[n:] - x[:-n])))

    def getADEVScaled(self) -> np.ndarray:
        """ADEV * tau / sqrt(3): the timestamps' standard deviation for white phase noise."""
        return self.getADEV() * self.getTau() / np.sqrt(3)

    def getTDEV(self) -> np.ndarray:
        """Time deviation: MDEV * tau / sqrt(3)."""
        return self.getMDEV() * self.getTau() / np.sqrt(3)

    def getHDEVScaled(self) -> np.ndarray:
        """HDEV * tau / sqrt(10/3)."""
        return self.getHDEV() * self.getTau() / np.sqrt(10 / 3)

    def _trace(self, extra: int) -> np.ndarray:
        return self._x[-(self._trace_len + extra):]

    def getTraceIndex(self) -> np.ndarray:
        """Time of each trace point in s (the last ``trace_len`` phase samples)."""
        return self._trace(0).copy()

    def getTracePhase(self) -> np.ndarray:
        """Phase samples minus a straight-line fit over the trace, in s."""
        x = self._trace(0)
        if x.size < 2:
            return np.zeros(x.size)
        i = np.arange(x.size, dtype=np.float64)
        return x - np.polyval(np.polyfit(i, x, 1), i)

    def getTraceFrequency(self) -> np.ndarray:
        """Relative frequency error of each trace point against the trace's mean frequency (pp1)."""
        spans = np.diff(self._trace(1))
        return spans.mean() / spans - 1.0 if spans.size else spans

    def getTraceFrequencyAbsolute(self, input_frequency: float = 0.0) -> np.ndarray:
        """Frequency of each trace point minus ``input_frequency``, in Hz."""
        spans = np.diff(self._trace(1))
        return self._average / spans - float(input_frequency)


class FrequencyStability(IteratorBase):
    """Frequency stability of a periodic signal on one channel (ADEV, MDEV, HDEV and their time-domain forms)."""

    def __init__(self, tagger: TimeTaggerBase, channel: int, steps: list[int], average: int = 1000,
                 trace_len: int = 1000):
        self._steps = np.asarray([int(s) for s in channel_list("FrequencyStability steps", steps)], dtype=np.int64)
        if (self._steps <= 0).any():
            raise ValueError(f"steps must be positive, got {self._steps.tolist()}")
        self._average = positive("average", average)
        self._trace_len = positive("trace_len", trace_len)
        self._origin: int | None = None
        self._pending = np.empty(0, dtype=np.int64)
        self._phase: list[np.ndarray] = []
        super().__init__(tagger, [channel])

    def _describe(self) -> dict[str, Any]:
        return {"steps": self._steps.tolist(), "average": self._average, "trace_len": self._trace_len}

    def _on_clear(self) -> None:
        self._origin = None
        self._pending = np.empty(0, dtype=np.int64)
        self._phase = []

    def _on_chunk(self, chunk: Chunk) -> None:
        tags = chunk.get(self._channels[0])
        if not tags.size:
            return
        if self._origin is None:
            self._origin = int(tags[0])
        tags = np.concatenate([self._pending, tags]) if self._pending.size else tags
        blocks = tags.size // self._average
        used = blocks * self._average
        if blocks:
            means = (tags[:used] - self._origin).reshape(blocks, self._average).mean(axis=1)
            self._phase.append(means / PS_PER_S)
        self._pending = tags[used:].copy()

    def getDataObject(self) -> FrequencyStabilityData:
        """A snapshot of the current metrics."""
        with self._lock:
            phase = np.concatenate(self._phase) if self._phase else np.empty(0)
            self._phase = [phase] if phase.size else []
            return FrequencyStabilityData(phase, self._steps.astype(np.float64), self._trace_len, self._average)


class PulsePerSecondData:
    """A snapshot of a ``PulsePerSecondMonitor``: one row per reference pulse."""

    def __init__(self, rows: list[tuple[int, float, list[float], float]]):
        self._indices = np.array([r[0] for r in rows], dtype=np.int64)
        self._reference = np.array([r[1] for r in rows], dtype=np.float64)
        self._signals = np.array([r[2] for r in rows], dtype=np.float64)
        self._utc = np.array([r[3] for r in rows], dtype=np.float64)

    @property
    def size(self) -> int:
        """Number of reference pulses in the snapshot."""
        return int(self._indices.size)

    def getIndices(self) -> np.ndarray:
        """Index of each reference pulse (missed pulses skip indices)."""
        return self._indices.copy()

    def getReferenceOffsets(self) -> np.ndarray:
        """Each reference pulse's time since its predecessor minus the period, in s (first 0; after a gap NaN)."""
        return self._reference.copy()

    def getSignalOffsets(self) -> np.ndarray:
        """Offset of each signal channel from the reference pulse in s, shape (pulses, signals); NaN if missing."""
        return self._signals.copy()

    def getUtcSeconds(self) -> np.ndarray:
        """System time (Unix seconds) at which each reference pulse was processed."""
        return self._utc.copy()

    def getUtcDates(self) -> list[str]:
        """The same as ISO 8601 text, ``YYYY-MM-DD hh:mm:ss.ssssss``."""
        return [_utc_text(s) for s in self._utc.tolist()]

    def getStatus(self) -> np.ndarray:
        """True where the reference and every signal were seen."""
        complete = ~np.isnan(self._signals).any(axis=1) if self.size else np.empty(0, dtype=bool)
        return complete & ~np.isnan(self._reference)


def _utc_text(seconds: float) -> str:
    return _dt.datetime.fromtimestamp(seconds, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class PulsePerSecondMonitor(IteratorBase):
    """Offsets of PPS signals against a reference PPS, per reference pulse, optionally written to a CSV file."""

    def __init__(self, tagger: TimeTaggerBase, reference_channel: int, signal_channels: list[int],
                 filename: str = "", period: int = 1_000_000_000_000):
        signals = channel_list("PulsePerSecondMonitor signal_channels", signal_channels)
        self._period = positive("period", period)
        self._filename = str(filename)
        self._rows: list[tuple[int, float, list[float], float]] = []
        self._n_signals = len(signals)
        self._reset()
        super().__init__(tagger, [reference_channel, *signals])
        if self._filename:
            with open(self._filename, "w", newline="") as out:
                csv.writer(out).writerow(["index", "utc", "reference_offset_s",
                                          *[f"channel_{c}_offset_s" for c in signals]])

    def _reset(self) -> None:
        self._waiting: list[int] = []  # reference pulses whose signal window is still open
        self._recent = [np.empty(0, dtype=np.int64) for _ in range(self._n_signals)]
        self._last_reference: int | None = None
        self._index = -1

    def _describe(self) -> dict[str, Any]:
        return {"period": self._period, "filename": self._filename}

    def _on_clear(self) -> None:
        self._rows = []
        self._reset()

    def _on_chunk(self, chunk: Chunk) -> None:
        reference, *signals = self._channels
        half = self._period // 2
        for k, ch in enumerate(signals):  # keep signal pulses that may still pair with a waiting reference
            both = np.concatenate([self._recent[k], chunk.get(ch)])
            self._recent[k] = both[both >= chunk.end_ps - 2 * self._period]
        self._waiting.extend(chunk.get(reference).tolist())
        while self._waiting and self._waiting[0] + half <= chunk.end_ps:
            self._finish(self._waiting.pop(0), signals)

    def _finish(self, t_ref: int, signals: list[int]) -> None:
        half = self._period // 2
        if self._last_reference is None:
            step, offset = 1, 0.0
        else:
            gap = t_ref - self._last_reference
            step = max(1, round(gap / self._period))
            offset = (gap - self._period) / PS_PER_S if step == 1 else float("nan")
        self._last_reference = t_ref
        self._index += step
        offsets = []
        for k in range(len(signals)):
            near = self._recent[k][np.abs(self._recent[k] - t_ref) <= half]
            offsets.append(float((near[np.argmin(np.abs(near - t_ref))] - t_ref) / PS_PER_S) if near.size
                           else float("nan"))
        row = (self._index, offset, offsets, time.time())
        self._rows.append(row)
        if self._filename:
            with open(self._filename, "a", newline="") as out:
                csv.writer(out).writerow([row[0], _utc_text(row[3]), row[1], *row[2]])

    def getDataObject(self, remove: bool = False) -> PulsePerSecondData:
        """A snapshot of the pulses processed so far; ``remove`` drops them from the buffer."""
        with self._lock:
            data = PulsePerSecondData(self._rows)
            if remove:
                self._rows = []
            return data


# The vendor's TimeTaggerRPC server looks up "<measurement>Data" for every class with getDataObject; the
# vendor names this one PulsePerSecondData. The alias lets that server serve the simulator.
PulsePerSecondMonitorData = PulsePerSecondData
