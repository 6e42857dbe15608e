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


def _poisson_times(rng: np.random.Generator, t0: int, t1: int, rate_hz: float) -> np.ndarray:
    """Event times of a Poisson process of the given rate in [t0, t1), sorted."""
    if rate_hz <= 0 or t1 <= t0:
        return np.empty(0, dtype=np.int64)
    n = rng.poisson(rate_hz * (t1 - t0) / PS_PER_S)
    times = rng.integers(t0, t1, size=n, dtype=np.int64)
    times.sort()
    return times


def _jitter(rng: np.random.Generator, times: np.ndarray, rms_ps: float) -> np.ndarray:
    if rms_ps <= 0 or times.size == 0:
        return times
    return times + np.rint(rng.normal(0.0, rms_ps, size=times.size)).astype(np.int64)


@dataclass
class SignalSource:
    """Base class: a source drives some channels with pulses of one amplitude."""

    amplitude_v: float = field(default=1.0, kw_only=True)
    pulse_width_ps: int = field(default=10_000, kw_only=True)

    def channels(self) -> tuple[int, ...]:
        raise NotImplementedError

    def generate(self, rng: np.random.Generator, t0: int, t1: int) -> dict[int, np.ndarray]:
        raise NotImplementedError


@dataclass
class PoissonSource(SignalSource):
    """Uncorrelated clicks: dark counts, or an attenuated CW laser on a detector."""

    channel: int
    rate_hz: float
    jitter_ps: float = 0.0

    def channels(self) -> tuple[int, ...]:
        return (self.channel,)

    def generate(self, rng: np.random.Generator, t0: int, t1: int) -> dict[int, np.ndarray]:
        return {self.channel: _poisson_times(rng, t0, t1, self.rate_hz)}


@dataclass
class PeriodicSource(SignalSource):
    """A clock: one pulse every period, with optional Gaussian jitter."""

    channel: int
    frequency_hz: float
    phase_ps: int = 0
    jitter_ps: float = 0.0

    def channels(self) -> tuple[int, ...]:
        return (self.channel,)

    def generate(self, rng: np.random.Generator, t0: int, t1: int) -> dict[int, np.ndarray]:
        period = PS_PER_S / self.frequency_hz
        first = int(np.ceil((t0 - self.phase_ps) / period))
        last = int(np.ceil((t1 - self.phase_ps) / period))
        times = self.phase_ps + np.rint(np.arange(first, last, dtype=np.float64) * period).astype(np.int64)
        return {self.channel: _jitter(rng, times, self.jitter_ps)}


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

    def generate(self, rng: np.random.Generator, t0: int, t1: int) -> dict[int, np.ndarray]:
        period = PS_PER_S / self.repetition_hz
        first = int(np.ceil(t0 / period))
        last = int(np.ceil(t1 / period))
        out = {self.sync_channel: np.rint(np.arange(first, last, dtype=np.float64) * period).astype(np.int64)}
        share = self.detection_rate_hz / max(1, len(self.photon_channels))
        for channel in self.photon_channels:
            n = rng.poisson(share * (t1 - t0) / PS_PER_S)
            pulses = rng.integers(first, max(first + 1, last), size=n, dtype=np.int64)
            delays = rng.exponential(self.lifetime_ps, size=n) + rng.normal(0.0, self.jitter_ps, size=n)
            times = np.rint(pulses * period + self.offset_ps + delays).astype(np.int64)
            times.sort()
            out[channel] = times
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

    def generate(self, rng: np.random.Generator, t0: int, t1: int) -> dict[int, np.ndarray]:
        births = _poisson_times(rng, t0, t1, self.pair_rate_hz)
        arm_a = births[rng.random(births.size) < self.efficiency_a]
        arm_b = births[rng.random(births.size) < self.efficiency_b] + self.delay_ps
        arm_a = np.sort(_jitter(rng, arm_a, self.jitter_a_ps))
        arm_b = np.sort(_jitter(rng, arm_b, self.jitter_b_ps))
        if self.channel_a == self.channel_b:
            return {self.channel_a: np.sort(np.concatenate([arm_a, arm_b]))}
        return {self.channel_a: arm_a, self.channel_b: arm_b}


SOURCE_KINDS: dict[str, type[SignalSource]] = {
    "poisson": PoissonSource,
    "periodic": PeriodicSource,
    "pulsed_laser": PulsedLaserSource,
    "photon_pairs": PhotonPairSource,
}


def source_from_mapping(spec: Mapping[str, Any]) -> SignalSource:
    """Build a source from a TOML table such as ``{kind = "poisson", channel = 1, rate_hz = 1e4}``."""
    values = dict(spec)
    kind = values.pop("kind", None)
    cls = SOURCE_KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"signal source needs kind = one of {sorted(SOURCE_KINDS)}, got {kind!r}")
    if "photon_channels" in values:
        values["photon_channels"] = tuple(values["photon_channels"])
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"bad parameters for {kind} source: {exc}") from None
