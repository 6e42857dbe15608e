"""Physics of the simulated inputs: test signal, dead time, event divider, trigger level, delays, startFor."""

from __future__ import annotations

import numpy as np
import pytest
from simutil import run_for

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.signals import PeriodicSource, PoissonSource

SECOND = 10**12


def test_ultra_test_signal_countrate_is_800_khz(make_tagger):
    tagger = make_tagger("ultra")
    tagger.setTestSignal([1, 2], True)
    rate = TT.Countrate(tagger, [1, 2, 3])
    run_for(rate, SECOND // 10)
    data = rate.getData()
    np.testing.assert_allclose(data[:2], [800e3, 800e3], rtol=0.01)
    assert data[2] == 0  # channel 3 has no source and no test signal


def test_tt20_test_signal_is_845_khz_and_follows_the_divider(make_tagger):
    tagger = make_tagger("20")
    tagger.setTestSignal(1, True)
    rate = TT.Countrate(tagger, [1])
    run_for(rate, SECOND // 10)
    np.testing.assert_allclose(rate.getData(), [62.5e6 / 74], rtol=0.01)
    assert abs(rate.getData()[0] - 845e3) / 845e3 < 0.01
    tagger.setTestSignalDivider(148)
    assert tagger.getTestSignalDivider() == 148
    run_for(rate, SECOND // 10)
    np.testing.assert_allclose(rate.getData(), [62.5e6 / 148], rtol=0.01)


def test_falling_edges_follow_the_rising_edges_by_the_pulse_width(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6, pulse_width_ps=20_000)])
    tagger.setDeadtime(1, 2000)
    corr = TT.Correlation(tagger, -1, 1, binwidth=100, n_bins=1000)
    run_for(corr, SECOND // 100)
    index, data = corr.getIndex(), corr.getData()
    assert abs(index[data.argmax()] - 20_000) <= 100


def test_deadtime_removes_events_closer_than_the_deadtime(make_tagger):
    rate_hz, dead_ps = 5e6, 100_000
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=rate_hz)])
    assert tagger.setDeadtime(1, dead_ps) == dead_ps
    stream = TT.TimeTagStream(tagger, 10_000_000, [1])
    run_for(stream, SECOND // 20)
    stamps = stream.getData().getTimestamps()
    assert np.diff(stamps).min() >= dead_ps
    # A non-paralysable dead time passes r / (1 + r * tau) of a Poisson rate r.
    expected = rate_hz / (1 + rate_hz * dead_ps * 1e-12) * 0.05
    assert abs(stamps.size - expected) / expected < 0.02


def test_deadtime_below_the_minimum_is_raised_to_it_and_above_the_maximum_rejected(make_tagger):
    tagger = make_tagger("20")
    assert tagger.setDeadtime(1, 1000) == 6000
    assert tagger.setDeadtime(1, 13_000) == 12_000  # the Time Tagger 20 rounds to 6 ns clock cycles
    with pytest.raises(ValueError, match="dead time"):
        tagger.setDeadtime(1, 10**12)


def test_event_divider_passes_every_nth_event(make_tagger):
    tagger = make_tagger("ultra")
    tagger.setTestSignal([1, 2], True)
    tagger.setEventDivider(2, 8)
    rate = TT.Countrate(tagger, [1, 2])
    run_for(rate, SECOND // 10)
    counts = rate.getCountsTotal()
    assert counts[1] in (counts[0] // 8, counts[0] // 8 + 1)


def test_trigger_level_above_the_pulse_amplitude_gives_no_counts(make_tagger):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e5, amplitude_v=0.8)])
    tagger.setTriggerLevel(1, 1.0)
    rate = TT.Countrate(tagger, [1])
    run_for(rate, SECOND // 10)
    assert rate.getCountsTotal()[0] == 0
    tagger.setTriggerLevel(1, 0.4)
    run_for(rate, SECOND // 10)
    assert abs(rate.getData()[0] - 1e5) / 1e5 < 0.05


def test_input_delay_shifts_a_channel(make_tagger):
    tagger = make_tagger("ultra")
    tagger.setTestSignal([1, 2], True)
    tagger.setInputDelay(2, 3000)
    assert tagger.getInputDelay(2) == 3000
    corr = TT.Correlation(tagger, 2, 1, binwidth=10, n_bins=1000)
    run_for(corr, SECOND // 100)
    mean = np.average(corr.getIndex(), weights=corr.getData())
    assert abs(mean - 3000) < 10


def test_startfor_stops_after_the_simulated_duration(make_tagger):
    tagger = make_tagger("ultra")
    tagger.setTestSignal(1, True)
    counter = TT.Counter(tagger, [1], binwidth=10**9, n_values=100)
    duration = 123_456_789_000  # not a multiple of the engine's chunk
    counter.startFor(duration)
    assert counter.waitUntilFinished(60_000)
    assert not counter.isRunning()
    assert counter.getCaptureDuration() == duration
    before = counter.getDataTotalCounts().copy()
    tagger.sync()
    assert (counter.getDataTotalCounts() == before).all()  # nothing arrives after the stop


def test_invalid_channel_raises_a_value_error_naming_it(make_tagger):
    tagger = make_tagger("ultra")
    with pytest.raises(ValueError, match="invalid channel 9"):
        TT.Countrate(tagger, [1, 9])
    with pytest.raises(ValueError, match="invalid channel -12"):
        tagger.setTriggerLevel(-12, 0.5)
    with pytest.raises(ValueError, match="binwidth must be positive"):
        TT.Counter(tagger, [1], binwidth=0)
    with pytest.raises(ValueError, match="event divider"):
        tagger.setEventDivider(1, 0)


def test_conditional_filter_keeps_only_triggered_events(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=3, frequency_hz=10e6), PoissonSource(channel=1, rate_hz=5e4)])
    tagger.setConditionalFilter([1], [3])
    rate = TT.Countrate(tagger, [1, 3])
    run_for(rate, SECOND // 10)
    clicks, syncs = rate.getCountsTotal()
    assert syncs <= clicks and syncs > 0.95 * clicks  # one sync per click (two clicks in 100 ns are rare)
    tagger.clearConditionalFilter()
    run_for(rate, SECOND // 100)
    assert abs(rate.getData()[1] - 10e6) / 10e6 < 0.01


def test_a_failing_measurement_stops_alone_and_reports_its_error(make_tagger):
    tagger = make_tagger("ultra")
    tagger.setTestSignal(1, True)
    broken = TT.Countrate(tagger, [1])
    healthy = TT.Countrate(tagger, [1])

    def explode(chunk):
        raise ZeroDivisionError("simulated bug")

    broken._on_chunk = explode
    run_for(healthy, SECOND // 100)
    assert healthy.getCountsTotal()[0] == 8000
    with pytest.raises(RuntimeError, match="simulated bug"):
        broken.startFor(SECOND // 100)


def test_software_clock_locks_to_a_clock_input_and_emits_ideal_tags(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=3, frequency_hz=10e6, jitter_ps=20.0)])
    assert not tagger.getSoftwareClockState().enabled
    tagger.setSoftwareClock(3, 10e6)
    state = tagger.getSoftwareClockState()
    assert state.enabled and state.is_locked and state.clock_period == 100_000 and state.input_channel == 3
    ideal = state.ideal_clock_channel
    stream = TT.TimeTagStream(tagger, 10**6, [ideal])
    run_for(stream, SECOND // 1000)
    np.testing.assert_array_equal(np.diff(stream.getData().getTimestamps()), 100_000)
    assert 15 < state.phase_error_estimation < 35  # source jitter 20 ps plus the Ultra's own 9 ps
    tagger.disableSoftwareClock()
    assert not tagger.getSoftwareClockState().enabled


def test_reference_clock_on_a_channel_without_a_clock_raises(make_tagger):
    tagger = make_tagger("ultra", [PoissonSource(channel=4, rate_hz=1e6)])
    with pytest.raises(RuntimeError, match="did not lock"):
        tagger.setReferenceClock(4, 10e6)
    assert not tagger.getReferenceClockState().enabled
