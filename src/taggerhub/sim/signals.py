"""Physical signal sources that drive the simulated inputs.

Each source produces, for a window of source time, the sorted picosecond times
of rising edges on the channels it drives, vectorised with NumPy. Sources know
nothing about the tagger: trigger levels, delays, jitter of the tagger, dead
time and event dividers are applied afterwards by the input stage
(:mod:`taggerhub.sim.engine`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PS_PER_S = 1_000_000_000_000


JITTER_TABLE_SIZE = 1 << 16


class Noise:
    """A random generator plus fast helpers for the per-tag hot path.

    Gaussian jitter comes from a table of ``JITTER_TABLE_SIZE`` samples per RMS
    value, read from a random offset for every array: drawing a fresh normal
    per tag would cost more than everything else the engine does per tag.
    Attribute access falls through to the NumPy ``Generator``.
    """

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._tables: dict[float, np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rng, name)

    def _table(self, rms_ps: float) -> np.ndarray:
        table = self._tables.get(rms_ps)
        if table is None:
            one = np.rint(self.rng.normal(0.0, rms_ps, JITTER_TABLE_SIZE)).astype(np.int64)
            table = self._tables[rms_ps] = np.concatenate([one, one])
        return table

    def add_gaussian(self, times: np.ndarray, rms_ps: float) -> None:
        """Add to ``times`` in place what ``gaussian(times.size, rms_ps)`` would return, without building it."""
        table = self._table(rms_ps)
        start = int(self.rng.integers(JITTER_TABLE_SIZE))
        for at in range(0, times.size, JITTER_TABLE_SIZE):
            block = times[at:at + JITTER_TABLE_SIZE]
            block += table[start:start + block.size]

    def gaussian(self, n: int, rms_ps: float) -> np.ndarray:
        """``n`` Gaussian integer offsets in ps with the given RMS."""
        table = self._table(rms_ps)
        start = int(self.rng.integers(JITTER_TABLE_SIZE))
        if n <= JITTER_TABLE_SIZE:
            return table[start:start + n]
        reps = -(-(n + start) // JITTER_TABLE_SIZE)
        return np.tile(table[:JITTER_TABLE_SIZE], reps)[start:start + n]

    def jitter(self, times: np.ndarray, rms_ps: float) -> np.ndarray:
        """``times`` plus Gaussian jitter, sorted again (cheaply: jitter rarely reorders)."""
        if rms_ps <= 0 or times.size == 0:
            return times
        out = times + self.gaussian(times.size, rms_ps)
        return ensure_sorted(out)

    def poisson_times(self, t0: int, t1: int, rate_hz: float) -> np.ndarray:
        """Event times of a Poisson process in [t0, t1), sorted: cumulative exponential gaps, no sort."""
        if rate_hz <= 0 or t1 <= t0:
            return np.empty(0, dtype=np.int64)
        scale = PS_PER_S / rate_hz
        span = float(t1 - t0)
        expected = span / scale
        parts = []
        reached = 0.0
        for _ in range(1000):  # one round almost always suffices
            n = int(expected - reached / scale + 6 * np.sqrt(expected) + 16)
            pos = np.cumsum(self.rng.standard_exponential(n, dtype=np.float32), dtype=np.float64)
            pos *= scale
            pos += reached
            parts.append(pos)
            reached = float(pos[-1])
            if reached >= span:
                break
        pos = np.concatenate(parts) if len(parts) > 1 else parts[0]
        pos = pos[: int(np.searchsorted(pos, span))]
        return pos.astype(np.int64) + t0

    def keep(self, n: int, probability: float) -> np.ndarray | slice:
        """A mask keeping each of ``n`` items with ``probability`` (a full slice when it is 1)."""
        if probability >= 1.0:
            return slice(None)
        return self.rng.random(n, dtype=np.float32) < probability


def ensure_sorted(times: np.ndarray) -> np.ndarray:
    """Sort ``times`` in place only if needed.

    Jitter mostly leaves a few isolated neighbours swapped: those are swapped back (checked around each),
    cheaper than timsort's pass over the whole array; anything else is sorted.
    """
    if times.size < 2:
        return times
    down = times[1:] < times[:-1]
    if not down.any():
        return times
    bad = np.flatnonzero(down)
    if bad.size * 64 < times.size and (bad.size == 1 or np.diff(bad).min() > 1):
        first = times[bad]
        times[bad] = times[bad + 1]
        times[bad + 1] = first
        # Only the pairs on either side of a swap can be out of order now.
        around = np.concatenate([bad - 1, bad + 1])
        around = around[(around >= 0) & (around < times.size - 1)]
        if not (times[around + 1] < times[around]).any():
            return times
    times.sort(kind="stable")
    return times


def merge_sorted(parts: list[np.ndarray]) -> np.ndarray:
    """Merge sorted arrays; linear for the usual case of few runs."""
    parts = [p for p in parts if p.size]
    if not parts:
        return np.empty(0, dtype=np.int64)
    if len(parts) == 1:
        return parts[0]
    merged = np.concatenate(parts)
    return ensure_sorted(merged)


@dataclass
class SignalSource:
    """Base class: a source drives some channels with pulses of one amplitude."""

    amplitude_v: float = field(default=1.0, kw_only=True)
    pulse_width_ps: int = field(default=10_000, kw_only=True)

    def channels(self) -> tuple[int, ...]:
        raise NotImplementedError

    def generate(self, rng: Noise, t0: int, t1: int) -> dict[int, np.ndarray]:
        raise NotImplementedError


@dataclass
class PoissonSource(SignalSource):
    """Uncorrelated clicks: dark counts, or an attenuated CW laser on a detector."""

    channel: int
    rate_hz: float
    jitter_ps: float = 0.0

    def channels(self) -> tuple[int, ...]:
        return (self.channel,)

    def generate(self, rng: Noise, t0: int, t1: int) -> dict[int, np.ndarray]:
        return {self.channel: rng.jitter(rng.poisson_times(t0, t1, self.rate_hz), self.jitter_ps)}


@dataclass
class PeriodicSource(SignalSource):
    """A clock: one pulse every period, with optional Gaussian jitter."""

    channel: int
    frequency_hz: float
    phase_ps: int = 0
    jitter_ps: float = 0.0

    def channels(self) -> tuple[int, ...]:
        return (self.channel,)

    def generate(self, rng: Noise, t0: int, t1: int) -> dict[int, np.ndarray]:
        period = PS_PER_S / self.frequency_hz
        first = int(np.ceil((t0 - self.phase_ps) / period))
        last = int(np.ceil((t1 - self.phase_ps) / period))
        times = self.phase_ps + np.rint(np.arange(first, last, dtype=np.float64) * period).astype(np.int64)
        return {self.channel: rng.jitter(times, self.jitter_ps)}


@dataclass
class PulsedLaserSource(SignalSource):
    """A pulsed laser: a sync output on one channel, detected photons on others.

    Photons are emitted with an exponential delay after their pulse (the
    emitter's lifetime) and detected at ``detection_rate_hz`` in total.
    """

    sync_channel: int
    photon_channels: tuple[int, ...]
    repetition_hz: float = 1e6
    detection_rate_hz: float = 50e3
    lifetime_ps: float = 3000.0
    offset_ps: int = 0
    jitter_ps: float = 30.0

    def channels(self) -> tuple[int, ...]:
        return (self.sync_channel, *self.photon_channels)

    def generate(self, rng: Noise, t0: int, t1: int) -> dict[int, np.ndarray]:
        period = PS_PER_S / self.repetition_hz
        first = int(np.ceil(t0 / period))
        last = int(np.ceil(t1 / period))
        out = {self.sync_channel: np.rint(np.arange(first, last, dtype=np.float64) * period).astype(np.int64)}
        share = self.detection_rate_hz / max(1, len(self.photon_channels))
        for channel in self.photon_channels:
            # Detections form a Poisson process; each belongs to the pulse before it.
            detections = rng.poisson_times(t0, t1, share)
            pulses = np.floor(detections / period)
            delays = rng.standard_exponential(detections.size, dtype=np.float32) * self.lifetime_ps
            times = np.rint(pulses * period + self.offset_ps + delays).astype(np.int64)
            out[channel] = rng.jitter(ensure_sorted(times), self.jitter_ps)
        return out


@dataclass
class PhotonPairSource(SignalSource):
    """Photon pairs (SPDC): a click on ``channel_b`` ``delay_ps`` after ``channel_a``.

    Each arm detects its photon with its own efficiency and Gaussian jitter, so
    a Correlation between the channels peaks at ``delay_ps`` with an RMS width of
    ``sqrt(jitter_a_ps**2 + jitter_b_ps**2)`` (plus the tagger's own jitter).
    """

    channel_a: int
    channel_b: int
    pair_rate_hz: float
    delay_ps: int = 0
    efficiency_a: float = 1.0
    efficiency_b: float = 1.0
    jitter_a_ps: float = 0.0
    jitter_b_ps: float = 0.0

    def channels(self) -> tuple[int, ...]:
        return (self.channel_a, self.channel_b)

    def generate(self, rng: Noise, t0: int, t1: int) -> dict[int, np.ndarray]:
        births = rng.poisson_times(t0, t1, self.pair_rate_hz)
        arm_a = rng.jitter(births[rng.keep(births.size, self.efficiency_a)], self.jitter_a_ps)
        arm_b = rng.jitter(births[rng.keep(births.size, self.efficiency_b)] + self.delay_ps, self.jitter_b_ps)
        if self.channel_a == self.channel_b:
            return {self.channel_a: merge_sorted([arm_a, arm_b])}
        return {self.channel_a: arm_a, self.channel_b: arm_b}


@dataclass
class TiledSource(SignalSource):
    """Another source's tags over one ``period_ps``, generated once and repeated: tens of M tags/s on one core.

    The first call generates ``of`` over [0, period) (with ``seed``, or the device's random generator) and
    wraps every tag into the period, so the pattern joins up seamlessly (a pair straddling the end continues at
    the start of the next period). Each window is then a slice of the pattern plus the period's offset: one
    add per tag, no random numbers. Statistics within a period are the inner source's; the stream repeats
    exactly every ``period_ps`` (a correlation over longer delays sees the repetition). The tagger's input
    stage (its jitter, delays, dead time, dividers) still acts on every tag as it does for any source.
    Memory: 8 bytes per tag of one period (``rate * period``).
    """

    of: SignalSource
    period_ps: int = 100_000_000_000  # 100 ms
    seed: int | None = None

    def __post_init__(self) -> None:
        self.period_ps = int(self.period_ps)
        if self.period_ps <= 0:
            raise ValueError(f"period_ps must be positive, got {self.period_ps}")
        if isinstance(self.of, TiledSource):
            raise ValueError("a tiled source cannot tile another tiled source")
        self.amplitude_v, self.pulse_width_ps = self.of.amplitude_v, self.of.pulse_width_ps
        self._pattern: dict[int, np.ndarray] | None = None

    def channels(self) -> tuple[int, ...]:
        return self.of.channels()

    def pattern(self, rng: Noise) -> dict[int, np.ndarray]:
        """The period's tags per channel, each sorted in [0, period_ps) (made on first use)."""
        if self._pattern is None:
            own = rng if self.seed is None else Noise(np.random.default_rng(self.seed))
            period = int(self.period_ps)
            generated = self.of.generate(own, 0, period)
            self._pattern = {ch: np.sort(times % period) for ch, times in generated.items()}
        return self._pattern

    def generate(self, rng: Noise, t0: int, t1: int) -> dict[int, np.ndarray]:
        period = int(self.period_ps)
        out = {}
        for channel, base in self.pattern(rng).items():
            parts = []
            for tile in range(t0 // period, (t1 - 1) // period + 1):
                offset = tile * period
                lo, hi = np.searchsorted(base, (t0 - offset, t1 - offset))
                parts.append(base[lo:hi] + offset)
            out[channel] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return out


SOURCE_KINDS: dict[str, type[SignalSource]] = {
    "poisson": PoissonSource,
    "periodic": PeriodicSource,
    "pulsed_laser": PulsedLaserSource,
    "photon_pairs": PhotonPairSource,
    "tiled": TiledSource,
}


def source_from_mapping(spec: Mapping[str, Any]) -> SignalSource:
    """Build a source from a TOML table such as ``{kind = "poisson", channel = 1, rate_hz = 1e4}``."""
    values = dict(spec)
    kind = values.pop("kind", None)
    cls = SOURCE_KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"signal source needs kind = one of {sorted(SOURCE_KINDS)}, got {kind!r}")
    if kind == "tiled":
        inner = values.get("of")
        if not isinstance(inner, Mapping):
            raise ValueError("a tiled source needs of = {kind = ..., ...}: the source whose period it repeats")
        values["of"] = source_from_mapping(inner)
    if "photon_channels" in values:
        values["photon_channels"] = tuple(values["photon_channels"])
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"bad parameters for {kind} source: {exc}") from None
