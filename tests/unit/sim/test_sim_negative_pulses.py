"""Pulse polarity: negative pulses trigger only at negative levels between 0 V and their amplitude, and vice versa."""

from __future__ import annotations

import numpy as np
import pytest
from simutil import run_for

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.lab import devices_from_mapping
from taggerhub.sim.signals import PeriodicSource, PoissonSource

SECOND = 10**12
RATE_HZ = 2e5


def measured_rate(tagger: TT.TimeTagger, channel: int, level_v: float) -> float:
    tagger.setTriggerLevel(abs(channel), level_v)
    rate = TT.Countrate(tagger, [channel])
    run_for(rate, SECOND // 10)
    return float(rate.getData()[0])


@pytest.mark.parametrize("level_v", [-0.01, -0.014, -0.25, -0.49])
def test_negative_pulses_count_at_negative_levels_above_their_amplitude(make_tagger, level_v):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=RATE_HZ, amplitude_v=-0.5)])
    assert tagger.getTriggerLevel(1) == 0.5  # the vendor's default level sees no negative pulse...
    assert measured_rate(tagger, 1, level_v) == pytest.approx(RATE_HZ, rel=0.02)  # ...a negative one does
    assert measured_rate(tagger, -1, level_v) == pytest.approx(RATE_HZ, rel=0.02)  # both edges


@pytest.mark.parametrize("level_v", [0.01, 0.014, 0.5, -0.51, -2.0, 0.0])
def test_negative_pulses_give_nothing_at_positive_levels_or_beyond_the_amplitude(make_tagger, level_v):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=RATE_HZ, amplitude_v=-0.5)])
    assert measured_rate(tagger, 1, level_v) == 0
    assert measured_rate(tagger, -1, level_v) == 0


@pytest.mark.parametrize(("level_v", "expected_hz"), [(0.01, RATE_HZ), (0.49, RATE_HZ), (-0.01, 0), (-0.014, 0),
                                                       (0.51, 0)])
def test_positive_pulses_count_only_at_positive_levels_below_their_amplitude(make_tagger, level_v, expected_hz):
    tagger = make_tagger("x", [PoissonSource(channel=2, rate_hz=RATE_HZ, amplitude_v=0.5)])
    assert measured_rate(tagger, 2, level_v) == pytest.approx(expected_hz, rel=0.02)


def test_a_negative_pulse_falls_first_and_rises_a_pulse_width_later(make_tagger):
    width = 20_000
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6, pulse_width_ps=width,
                                                  amplitude_v=-0.3)])
    tagger.setTriggerLevel(1, -0.1)
    corr = TT.Correlation(tagger, -1, 1, binwidth=100, n_bins=1000)  # peaks at t(1) - t(-1)
    run_for(corr, SECOND // 100)
    index, data = corr.getIndex(), corr.getData()
    assert data.sum() > 0
    assert abs(index[data.argmax()] - (-width)) <= 100  # the opposite of a positive pulse


def test_mixed_polarities_on_one_input_are_selected_by_the_sign_of_the_level(make_tagger):
    tagger = make_tagger("ultra", [PoissonSource(channel=3, rate_hz=1e5, amplitude_v=0.8),
                                   PoissonSource(channel=3, rate_hz=3e5, amplitude_v=-0.4)])
    assert measured_rate(tagger, 3, 0.3) == pytest.approx(1e5, rel=0.03)
    assert measured_rate(tagger, 3, -0.3) == pytest.approx(3e5, rel=0.02)
    assert measured_rate(tagger, 3, 0.6) == pytest.approx(1e5, rel=0.03)
    assert measured_rate(tagger, 3, -0.6) == 0


def test_the_time_tagger_20_cannot_trigger_below_0_v_and_clamps_like_the_vendor(make_tagger, caplog):
    tagger = make_tagger("20", [PoissonSource(channel=1, rate_hz=RATE_HZ, amplitude_v=-0.5)])
    assert tagger.getTriggerLevelRange(1) == [0.0, 2.5]
    with caplog.at_level("WARNING", logger="taggerhub.sim"):
        assert measured_rate(tagger, 1, -0.014) == 0
    assert tagger.getTriggerLevel(1) == 0.0
    assert "Trigger level out of range. Setting to min device value: 0.000 V." in caplog.text


def test_a_lab_file_source_with_negative_amplitude_and_level_counts(make_tagger):
    spec = devices_from_mapping({"device": [{
        "model": "ultra", "serial": "NEG",
        "source": [{"kind": "poisson", "channel": 4, "rate_hz": RATE_HZ, "amplitude_v": -0.5}],
        "channel": {"4": {"trigger_level_v": -0.014}},
    }]})[0]
    tagger = make_tagger("ultra", spec.sources)
    for channel, values in spec.channels.items():
        tagger.setTriggerLevel(channel, values["trigger_level_v"])
    rate = TT.Countrate(tagger, [4])
    run_for(rate, SECOND // 10)
    np.testing.assert_allclose(rate.getData(), [RATE_HZ], rtol=0.02)
