"""Specifications of the simulated Time Tagger models.

Numbers come from the vendor library's docstrings and data sheets: test-signal
base clock and default divider, dead-time limits, trigger-level range, timing
jitter and the USB event-rate limit at which real devices start to overflow.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    channels: int
    test_signal_base_hz: float
    test_signal_default_divider: int
    deadtime_min_ps: int
    deadtime_max_ps: int
    deadtime_step_ps: int  # 0: arbitrary values allowed above the minimum
    trigger_min_v: float
    trigger_max_v: float
    jitter_rms_ps: float
    max_rate_hz: float  # sustained tag rate before the device reports overflows
    serial_prefix: str

    @property
    def test_signal_period_ps(self) -> int:
        return round(1e12 * self.test_signal_default_divider / self.test_signal_base_hz)


TIME_TAGGER_ULTRA = ModelSpec(
    name="Time Tagger Ultra",
    channels=8,
    test_signal_base_hz=403.2e6,
    test_signal_default_divider=504,  # 800 kHz
    deadtime_min_ps=2000,
    deadtime_max_ps=2_147_000_000,
    deadtime_step_ps=0,
    trigger_min_v=-2.5,
    trigger_max_v=2.5,
    jitter_rms_ps=9.0,
    max_rate_hz=65e6,
    serial_prefix="2138",
)

TIME_TAGGER_X = ModelSpec(
    name="Time Tagger X",
    channels=16,
    test_signal_base_hz=403.2e6,
    test_signal_default_divider=504,
    deadtime_min_ps=1333,
    deadtime_max_ps=716_000_000,
    deadtime_step_ps=0,
    trigger_min_v=-2.0,
    trigger_max_v=2.0,
    jitter_rms_ps=2.0,
    max_rate_hz=80e6,
    serial_prefix="2338",
)

TIME_TAGGER_20 = ModelSpec(
    name="Time Tagger 20",
    channels=8,
    test_signal_base_hz=62.5e6,
    test_signal_default_divider=74,  # ~845 kHz
    deadtime_min_ps=6000,
    deadtime_max_ps=393_000_000,
    deadtime_step_ps=6000,
    trigger_min_v=0.0,
    trigger_max_v=2.5,
    jitter_rms_ps=34.0,
    max_rate_hz=9e6,
    serial_prefix="1740",
)

MODELS = {spec.name: spec for spec in (TIME_TAGGER_ULTRA, TIME_TAGGER_X, TIME_TAGGER_20)}
ALIASES = {"ultra": TIME_TAGGER_ULTRA, "x": TIME_TAGGER_X, "20": TIME_TAGGER_20, "tt20": TIME_TAGGER_20}


def model_by_name(name: str) -> ModelSpec:
    """Look a model up by its full name or a short alias ("ultra", "x", "20")."""
    spec = MODELS.get(name) or ALIASES.get(name.lower())
    if spec is None:
        known = ", ".join(list(MODELS) + list(ALIASES))
        raise ValueError(f"unknown Time Tagger model {name!r}; known: {known}")
    return spec
