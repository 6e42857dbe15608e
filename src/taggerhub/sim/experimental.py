"""The vendor's simulation building blocks (``Swabian.TimeTagger.Experimental``), as virtual channels.

Signal generators create events (on a new virtual channel, or added to
``base_channel``); transforms and simulated detectors take an input channel
and either modify it in place or, with ``copy=True`` (detectors always), put
the result on a new virtual channel. Constructor signatures are the vendor's;
time arguments of type float are in seconds, as the vendor documents for
``TransformDeadtime`` and ``SimDetector``, integer ones in picoseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .engine import Chunk, InputStage, InputState
from .enums import CHANNEL_UNUSED
from .oscillator import OscillatorSimulation
from .signals import PS_PER_S, merge_sorted
from .virtual import EMPTY, VirtualChannelBase

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase

__all__ = [
    "ExponentialSignalGenerator",
    "GammaSignalGenerator",
    "GaussianSignalGenerator",
    "OscillatorSimulation",
    "PatternSignalGenerator",
    "SimDetector",
    "SimLifetime",
    "SimSignalSplitter",
    "TransformDeadtime",
    "TransformEfficiency",
    "TransformGaussianBroadening",
    "TwoStateExponentialSignalGenerator",
    "UniformSignalGenerator",
]


def _rng(tagger: TimeTaggerBase, seed: int) -> np.random.Generator:
    """-1 derives a seed from the tagger's generator, so a seeded lab stays reproducible."""
    seed = int(seed)
    if seed < 0:
        seed = int(tagger._stage.rng.integers(0, 2**63 - 1))
    return np.random.default_rng(seed)


def _seconds_to_ps(name: str, value: float, allow_zero: bool = True) -> float:
    value = float(value)
    if value < 0 or (value == 0 and not allow_zero) or not np.isfinite(value):
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} time in seconds, "
                         f"got {value}")
    return value * PS_PER_S


class _Generator(VirtualChannelBase):
    """A renewal process: events separated by independent gaps drawn by ``_gaps``."""

    def __init__(self, tagger: TimeTaggerBase, base_channel: int, seed: int = -1):
        self._rand = _rng(tagger, seed)
        self._base = None if int(base_channel) == CHANNEL_UNUSED else tagger._check_channel(base_channel)
        self._next_t: float | None = None
        super().__init__(tagger, [], outputs=[self._base] if self._base is not None else None)

    def _mean_gap_ps(self) -> float:
        raise NotImplementedError

    def _gaps(self, n: int) -> np.ndarray:
        raise NotImplementedError

    def _first(self, begin_ps: int) -> float:
        return begin_ps + float(self._gaps(1)[0])

    def _on_chunk(self, chunk: Chunk) -> None:
        if self._next_t is None:
            self._next_t = self._first(chunk.begin_ps)
        parts = []
        t = self._next_t
        for _ in range(10_000):  # bounded: each round covers the expected rest of the window and more
            if t >= chunk.end_ps:
                break
            n = int((chunk.end_ps - t) / max(self._mean_gap_ps(), 1.0) * 1.2) + 16
            times = t + np.concatenate([[0.0], np.cumsum(self._gaps(n - 1))])
            inside = times[times < chunk.end_ps]
            parts.append(inside)
            t = float(times[-1] + self._gaps(1)[0]) if inside.size == times.size else float(times[inside.size])
        self._next_t = t
        out = np.rint(np.concatenate(parts)).astype(np.int64) if parts else EMPTY
        self._emit(chunk, self._outputs[0], out)


class ExponentialSignalGenerator(_Generator):
    """Poisson events at ``rate`` Hz (exponential gaps)."""

    def __init__(self, tagger: TimeTaggerBase, rate: float, base_channel: int = CHANNEL_UNUSED, seed: int = -1):
        rate = float(rate)
        if not rate > 0:
            raise ValueError(f"rate must be positive (Hz), got {rate}")
        self._scale = PS_PER_S / rate
        super().__init__(tagger, base_channel, seed)

    def _mean_gap_ps(self) -> float:
        return self._scale

    def _gaps(self, n: int) -> np.ndarray:
        return self._rand.exponential(self._scale, n)


class GaussianSignalGenerator(_Generator):
    """Events with Gaussian gaps of ``mean`` and ``standard_deviation`` seconds (negative gaps clipped to 0)."""

    def __init__(self, tagger: TimeTaggerBase, mean: float, standard_deviation: float,
                 base_channel: int = CHANNEL_UNUSED, seed: int = -1):
        self._mean = _seconds_to_ps("mean", mean, allow_zero=False)
        self._sd = _seconds_to_ps("standard_deviation", standard_deviation)
        super().__init__(tagger, base_channel, seed)

    def _mean_gap_ps(self) -> float:
        return self._mean

    def _gaps(self, n: int) -> np.ndarray:
        return np.maximum(self._rand.normal(self._mean, self._sd, n), 0.0)


class UniformSignalGenerator(_Generator):
    """Events with gaps uniform in [``lower_bound``, ``upper_bound``] ps."""

    def __init__(self, tagger: TimeTaggerBase, upper_bound: int, lower_bound: int = 1,
                 base_channel: int = CHANNEL_UNUSED, seed: int = -1):
        self._lo, self._hi = int(lower_bound), int(upper_bound)
        if not 0 < self._lo <= self._hi:
            raise ValueError(f"need 0 < lower_bound <= upper_bound (ps), got {self._lo} and {self._hi}")
        super().__init__(tagger, base_channel, seed)

    def _mean_gap_ps(self) -> float:
        return (self._lo + self._hi) / 2

    def _gaps(self, n: int) -> np.ndarray:
        return self._rand.integers(self._lo, self._hi + 1, n).astype(np.float64)


class GammaSignalGenerator(_Generator):
    """Events with Gamma-distributed gaps: shape ``alpha``, scale ``beta`` seconds."""

    def __init__(self, tagger: TimeTaggerBase, alpha: float, beta: float, base_channel: int = CHANNEL_UNUSED,
                 seed: int = -1):
        self._alpha = float(alpha)
        if not self._alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self._beta = _seconds_to_ps("beta", beta, allow_zero=False)
        super().__init__(tagger, base_channel, seed)

    def _mean_gap_ps(self) -> float:
        return self._alpha * self._beta

    def _gaps(self, n: int) -> np.ndarray:
        return self._rand.gamma(self._alpha, self._beta, n)


class TwoStateExponentialSignalGenerator(_Generator):
    """A single two-level emitter: excitation after Exp(``excitation_time``), emission after Exp(``life_time``).

    Consecutive photons are separated by the sum of both waiting times, so the emitter is antibunched:
    its autocorrelation vanishes at zero delay.
    """

    def __init__(self, tagger: TimeTaggerBase, excitation_time: float, life_time: float,
                 base_channel: int = CHANNEL_UNUSED, seed: int = -1):
        self._excitation = _seconds_to_ps("excitation_time", excitation_time, allow_zero=False)
        self._life = _seconds_to_ps("life_time", life_time, allow_zero=False)
        super().__init__(tagger, base_channel, seed)

    def _mean_gap_ps(self) -> float:
        return self._excitation + self._life

    def _gaps(self, n: int) -> np.ndarray:
        return self._rand.exponential(self._excitation, n) + self._rand.exponential(self._life, n)


class PatternSignalGenerator(VirtualChannelBase):
    """Events at the offsets of ``sequence`` (ps), once or repeated every pattern length + ``spacing``."""

    def __init__(self, tagger: TimeTaggerBase, sequence: list[int], repeat: bool = False, start_delay: int = 0,
                 spacing: int = 0, base_channel: int = CHANNEL_UNUSED):
        offsets = np.asarray([int(x) for x in sequence], dtype=np.int64)
        if offsets.size == 0 or (offsets < 0).any():
            raise ValueError("sequence needs at least one offset, all >= 0 ps")
        self._offsets = np.cumsum(offsets)  # each entry is the offset from the previous event
        self._repeat = bool(repeat)
        self._start_delay = int(start_delay)
        self._period = int(self._offsets[-1]) + int(spacing)
        if self._repeat and self._period <= 0:
            raise ValueError("a repeated pattern needs a positive length (sequence sum + spacing)")
        self._origin: int | None = None
        base = None if int(base_channel) == CHANNEL_UNUSED else tagger._check_channel(base_channel)
        super().__init__(tagger, [], outputs=[base] if base is not None else None)

    def _on_chunk(self, chunk: Chunk) -> None:
        if self._origin is None:
            self._origin = chunk.begin_ps + self._start_delay
        rel0, rel1 = chunk.begin_ps - self._origin, chunk.end_ps - self._origin
        if self._repeat:
            first = max(0, (rel0 - int(self._offsets[-1])) // self._period)
            last = max(0, rel1 // self._period + 1)
            reps = np.arange(first, last, dtype=np.int64)
            times = (reps[:, None] * self._period + self._offsets[None, :]).ravel()
        else:
            times = self._offsets
        times = times[(times >= rel0) & (times < rel1)] + self._origin
        self._emit(chunk, self._outputs[0], np.sort(times))


class _Transform(VirtualChannelBase):
    """Applies ``_transform`` to an input channel, in place or (``copy``) onto a new virtual channel."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, copy: bool, seed: int = -1):
        self._rand = _rng(tagger, seed)
        self._copy = bool(copy)
        self._input = int(input_channel)
        super().__init__(tagger, [self._input], outputs=None if self._copy else [self._input])

    def _transform(self, chunk: Chunk, tags: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _on_chunk(self, chunk: Chunk) -> None:
        tags = chunk.get(self._input)
        if not self._copy:
            chunk.tags[self._input] = EMPTY
        self._emit(chunk, self._outputs[0], self._transform(chunk, tags), presorted=False)


class TransformEfficiency(_Transform):
    """Keep each event with probability ``efficiency``."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, efficiency: float, copy: bool = False,
                 seed: int = -1):
        self._efficiency = float(efficiency)
        if not 0.0 <= self._efficiency <= 1.0:
            raise ValueError(f"efficiency must be within 0..1, got {efficiency}")
        super().__init__(tagger, input_channel, copy, seed)

    def _transform(self, chunk: Chunk, tags: np.ndarray) -> np.ndarray:
        return tags[self._rand.random(tags.size) < self._efficiency]


class TransformGaussianBroadening(_Transform):
    """Add Gaussian jitter of ``standard_deviation`` seconds to every event."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, standard_deviation: float, copy: bool = False,
                 seed: int = -1):
        self._sd = _seconds_to_ps("standard_deviation", standard_deviation)
        super().__init__(tagger, input_channel, copy, seed)

    def _transform(self, chunk: Chunk, tags: np.ndarray) -> np.ndarray:
        if self._sd == 0 or tags.size == 0:
            return tags
        return tags + np.rint(self._rand.normal(0.0, self._sd, tags.size)).astype(np.int64)


class TransformDeadtime(_Transform):
    """Drop every event closer than ``deadtime`` seconds to the previous kept one."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, deadtime: float, copy: bool = False):
        self._state = InputState(deadtime_ps=round(_seconds_to_ps("deadtime", deadtime)))
        super().__init__(tagger, input_channel, copy)

    def _transform(self, chunk: Chunk, tags: np.ndarray) -> np.ndarray:
        return InputStage._apply_deadtime(self._state, tags)


class SimDetector(VirtualChannelBase):
    """A detector on ``input_channel``: efficiency, dark counts (Hz), jitter and dead time (seconds)."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, efficiency: float = 1.0,
                 darkcount_rate: float = 0.0, jitter: float = 0, deadtime: float = 0.0, seed: int = -1):
        self._efficiency = float(efficiency)
        if not 0.0 <= self._efficiency <= 1.0:
            raise ValueError(f"efficiency must be within 0..1, got {efficiency}")
        self._dark_hz = float(darkcount_rate)
        if self._dark_hz < 0:
            raise ValueError(f"darkcount_rate must be >= 0 Hz, got {darkcount_rate}")
        self._jitter_ps = _seconds_to_ps("jitter", jitter)
        self._state = InputState(deadtime_ps=round(_seconds_to_ps("deadtime", deadtime)))
        self._rand = _rng(tagger, seed)
        self._pending = EMPTY
        super().__init__(tagger, [int(input_channel)])

    def _on_chunk(self, chunk: Chunk) -> None:
        tags = chunk.get(self._channels[0])
        tags = tags[self._rand.random(tags.size) < self._efficiency]
        if self._dark_hz > 0:
            n = self._rand.poisson(self._dark_hz * (chunk.end_ps - chunk.begin_ps) / PS_PER_S)
            tags = merge_sorted([tags, np.sort(self._rand.integers(chunk.begin_ps, chunk.end_ps, n))])
        if self._jitter_ps > 0 and tags.size:
            tags = np.sort(tags + np.rint(self._rand.normal(0.0, self._jitter_ps, tags.size)).astype(np.int64))
        # Dead time acts on what reaches this chunk's output, pending tags included.
        tags = merge_sorted([self._pending, tags])
        cut = int(np.searchsorted(tags, chunk.end_ps))
        self._pending = tags[cut:]
        self._emit(chunk, self._outputs[0], InputStage._apply_deadtime(self._state, np.maximum(tags[:cut],
                                                                                                chunk.begin_ps)))

    def _on_clear(self) -> None:
        super()._on_clear()
        self._pending = EMPTY


class SimSignalSplitter(VirtualChannelBase):
    """A beam splitter: each event goes to the left channel with probability ``ratio``, else to the right."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, ratio: float = 0.5, seed: int = -1):
        self._ratio = float(ratio)
        if not 0.0 <= self._ratio <= 1.0:
            raise ValueError(f"ratio must be within 0..1, got {ratio}")
        self._rand = _rng(tagger, seed)
        super().__init__(tagger, [int(input_channel)], n_outputs=2)

    def _on_chunk(self, chunk: Chunk) -> None:
        tags = chunk.get(self._channels[0])
        left = self._rand.random(tags.size) < self._ratio
        self._emit(chunk, self._outputs[0], tags[left])
        self._emit(chunk, self._outputs[1], tags[~left])

    def getLeftChannel(self) -> int:
        """Channel of the events sent left."""
        return self._outputs[0]

    def getRightChannel(self) -> int:
        """Channel of the events sent right."""
        return self._outputs[1]


class SimLifetime(VirtualChannelBase):
    """An emitter excited by ``input_channel``: Poisson(``emission_rate``) photons, each delayed by Exp(lifetime)."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, lifetime: float, emission_rate: float = 0.1,
                 seed: int = -1):
        self._lifetime_ps = _seconds_to_ps("lifetime", lifetime, allow_zero=False)
        self._rate = float(emission_rate)
        if self._rate < 0:
            raise ValueError(f"emission_rate must be >= 0, got {emission_rate}")
        self._rand = _rng(tagger, seed)
        super().__init__(tagger, [int(input_channel)])

    def _on_chunk(self, chunk: Chunk) -> None:
        tags = chunk.get(self._channels[0])
        n = self._rand.poisson(self._rate, tags.size)
        excitations = np.repeat(tags, n)
        delays = np.rint(self._rand.exponential(self._lifetime_ps, excitations.size)).astype(np.int64)
        self._emit(chunk, self._outputs[0], excitations + delays, presorted=False)
