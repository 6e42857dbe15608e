"""Virtual channels and the vendor's Experimental simulation blocks."""

from __future__ import annotations

import numpy as np
import pytest
from simutil import run_for

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.signals import PeriodicSource, PhotonPairSource, PoissonSource

SECOND = 10**12


def test_delayed_channel_shifts_the_correlation_peak(make_tagger):
    tagger = make_tagger("ultra", [PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=1e5, delay_ps=3000)])
    delayed = TT.DelayedChannel(tagger, 1, 10_000)
    corr = TT.Correlation(tagger, 2, delayed.getChannel(), binwidth=10, n_bins=4000)
    run_for(corr, SECOND // 10)
    index, data = corr.getIndex(), corr.getData()
    assert abs(index[data.argmax()] - (3000 - 10_000)) <= 20
    with pytest.raises(ValueError, match="delay"):
        TT.DelayedChannel(tagger, 1, -5)


def test_coincidence_counts_the_pairs_within_the_window(make_tagger):
    pairs = PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=1e5, delay_ps=500, efficiency_a=0.5,
                             efficiency_b=0.5)
    tagger = make_tagger("ultra", [pairs])
    both = TT.Coincidence(tagger, [1, 2], coincidenceWindow=1000)
    groups = TT.Coincidences(tagger, [[1, 2], [1, 2]], coincidenceWindow=100)
    rate = TT.Countrate(tagger, [both.getChannel(), *groups.getChannels()])
    run_for(rate, SECOND)
    coincident, narrow_1, narrow_2 = rate.getData()
    assert abs(coincident - 1e5 * 0.25) / 2.5e4 < 0.03  # both arms detected
    assert narrow_1 == narrow_2 == 0  # the 500 ps delay is outside a 100 ps window


def test_gated_channel_passes_only_while_the_gate_is_open(make_tagger):
    # Gate opens on the rising and closes on the falling edge of a 1 MHz clock with 250 ns pulses: 25 % duty.
    tagger = make_tagger("ultra", [PeriodicSource(channel=3, frequency_hz=1e6, pulse_width_ps=250_000),
                                   PoissonSource(channel=1, rate_hz=1e6)])
    gated = TT.GatedChannel(tagger, 1, 3, -3)
    rate = TT.Countrate(tagger, [1, gated.getChannel()])
    run_for(rate, SECOND // 10)
    total, passed = rate.getData()
    assert abs(passed / total - 0.25) < 0.01
    with pytest.raises(ValueError, match="must differ"):
        TT.GatedChannel(tagger, 1, 3, 3)


def test_combiner_emits_the_union_of_its_inputs(make_tagger):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e5), PoissonSource(channel=2, rate_hz=3e5)])
    sync = TT.SynchronizedMeasurements(tagger)  # both count over exactly the same tags
    combiner = TT.Combiner(sync.getTagger(), [1, 2])
    rate = TT.Countrate(sync.getTagger(), [1, 2, combiner.getChannel()])
    sync.startFor(SECOND // 10)
    assert sync.waitUntilFinished(60_000)
    a, b, both = rate.getCountsTotal()
    assert both == a + b
    np.testing.assert_array_equal(combiner.getChannelCounts(), [a, b])


def test_experimental_detector_applies_efficiency_darkcounts_and_deadtime(make_tagger):
    E = TT.Experimental
    tagger = make_tagger("ultra")
    source = E.ExponentialSignalGenerator(tagger, 2e6)
    detector = E.SimDetector(tagger, source.getChannel(), efficiency=0.5, darkcount_rate=1e4, jitter=20e-12,
                             deadtime=200e-9)
    stream = TT.TimeTagStream(tagger, 10**7, [detector.getChannel()])
    rate = TT.Countrate(tagger, [source.getChannel(), detector.getChannel()])
    run_for(rate, SECOND // 10)
    run_for(stream, SECOND // 100)
    generated, detected = rate.getData()
    assert abs(generated - 2e6) / 2e6 < 0.01
    clicks = 0.5 * 2e6 + 1e4
    expected = clicks / (1 + clicks * 200e-9)
    assert abs(detected - expected) / expected < 0.02
    assert np.diff(stream.getData().getTimestamps()).min() >= 200_000


def test_experimental_splitter_and_efficiency_split_the_rate(make_tagger):
    E = TT.Experimental
    tagger = make_tagger("ultra")
    tagger.setTestSignal(1, True)
    splitter = E.SimSignalSplitter(tagger, 1, ratio=0.3)
    thinned = E.TransformEfficiency(tagger, splitter.getRightChannel(), 0.5, copy=True)
    rate = TT.Countrate(tagger, [splitter.getLeftChannel(), splitter.getRightChannel(), thinned.getChannel()])
    run_for(rate, SECOND // 10)
    left, right, half = rate.getData()
    np.testing.assert_allclose([left, right, half], [0.3 * 8e5, 0.7 * 8e5, 0.35 * 8e5], rtol=0.02)


def test_experimental_transforms_modify_the_input_in_place(make_tagger):
    E = TT.Experimental
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e6)])
    transform = E.TransformDeadtime(tagger, 1, 1e-6)  # dropping the object would free it, as in the vendor library
    rate = TT.Countrate(tagger, [1])
    run_for(rate, SECOND // 10)
    assert abs(rate.getData()[0] - 5e5) / 5e5 < 0.02  # r / (1 + r tau) with r tau = 1
    del transform  # freed: the chunk in flight may still see it, the next ones do not
    run_for(rate, SECOND // 50)
    run_for(rate, SECOND // 10)
    assert abs(rate.getData()[0] - 1e6) / 1e6 < 0.02


def test_experimental_pattern_and_gaussian_generators(make_tagger):
    E = TT.Experimental
    tagger = make_tagger("ultra")
    pattern = E.PatternSignalGenerator(tagger, [0, 1000, 2000], repeat=True, spacing=7000)
    gauss = E.GaussianSignalGenerator(tagger, 1e-6, 1e-8)
    stream = TT.TimeTagStream(tagger, 10**6, [pattern.getChannel()])
    rate = TT.Countrate(tagger, [pattern.getChannel(), gauss.getChannel()])
    run_for(rate, SECOND // 100)
    stamps = stream.getData().getTimestamps()
    assert set(np.diff(stamps[:30]).tolist()) == {1000, 2000, 7000}
    np.testing.assert_allclose(rate.getData(), [3 / 10e-9, 1e6], rtol=0.01)


def test_frequency_multiplier_restores_a_divided_clock(make_tagger):
    tagger = make_tagger("ultra")
    tagger.setTestSignal(1, True)
    tagger.setEventDivider(1, 4)
    multiplied = TT.FrequencyMultiplier(tagger, 1, 4)
    stream = TT.TimeTagStream(tagger, 10**6, [multiplied.getChannel()])
    rate = TT.Countrate(tagger, [1, multiplied.getChannel()])
    run_for(rate, SECOND // 100)
    run_for(stream, SECOND // 1000)
    divided, restored = rate.getData()
    assert abs(divided - 2e5) / 2e5 < 0.01 and abs(restored - 8e5) / 8e5 < 0.01
    np.testing.assert_allclose(np.diff(stream.getData().getTimestamps()), 1_250_000, atol=100)


def test_delayed_and_gated_channels_handle_several_inputs(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=3, frequency_hz=1e6, pulse_width_ps=500_000),
                                   PoissonSource(channel=1, rate_hz=1e6), PoissonSource(channel=2, rate_hz=2e6)])
    sync = TT.SynchronizedMeasurements(tagger)
    delayed = TT.DelayedChannels(sync.getTagger(), [1, 2], 5000)
    gated = TT.GatedChannels(sync.getTagger(), [1, 2], 3, -3)
    rate = TT.Countrate(sync.getTagger(), [1, 2, *delayed.getChannels(), *gated.getChannels()])
    sync.startFor(SECOND // 10)
    assert sync.waitUntilFinished(60_000)
    one, two, d1, d2, g1, g2 = rate.getCountsTotal()
    assert abs(d1 - one) <= 10 and abs(d2 - two) <= 20  # tags delayed past the end arrive after the stop
    assert abs(g1 / one - 0.5) < 0.01 and abs(g2 / two - 0.5) < 0.01


def test_gated_counter_counts_each_click_channel(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e7),
                                   PeriodicSource(channel=2, frequency_hz=2e7),
                                   PeriodicSource(channel=3, frequency_hz=1e5, phase_ps=20_000),
                                   PeriodicSource(channel=4, frequency_hz=1e5, phase_ps=5_020_000)])
    counter = TT.GatedCounter(tagger, [1, 2], 3, 4, n_values=50)
    run_for(counter, SECOND // 1000)
    data = counter.getData()
    assert data.shape == (2, 50) and counter.ready()
    np.testing.assert_array_equal(data[0], 50)  # 5 us gate at 10 MHz
    np.testing.assert_array_equal(data[1], 100)


def test_event_generator_emits_the_pattern_after_every_nth_trigger(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e5)])
    generator = TT.EventGenerator(tagger, 1, [0, 1000, 5000], trigger_divider=2)
    stream = TT.TimeTagStream(tagger, 10**6, [1, generator.getChannel()])
    run_for(stream, SECOND // 1000)
    buf = stream.getData()
    stamps, chans = buf.getTimestamps(), buf.getChannels()
    triggers, emitted = stamps[chans == 1], stamps[chans == generator.getChannel()]
    assert emitted.size == 3 * ((triggers.size + 1) // 2) or emitted.size == 3 * (triggers.size // 2)
    np.testing.assert_array_equal(np.diff(emitted[:3]), [1000, 4000])
    assert emitted[3] - emitted[0] == pytest.approx(20_000_000, abs=100)  # every second trigger of 100 kHz


def test_event_generator_stop_channel_aborts_running_patterns(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e5),
                                   PeriodicSource(channel=2, frequency_hz=1e5, phase_ps=2_500_000)])
    generator = TT.EventGenerator(tagger, 1, [1_000_000 * k for k in range(8)], stop_channel=2)
    rate = TT.Countrate(tagger, [1, generator.getChannel()])
    run_for(rate, SECOND // 100)
    triggers, emitted = rate.getCountsTotal()
    assert abs(emitted / triggers - 3) < 0.01  # offsets 0, 1 and 2 us come before the stop at 2.5 us


def test_synthetic_single_tag_emits_one_tag_per_trigger_call(make_tagger):
    tagger = make_tagger("ultra")
    single = TT.SyntheticSingleTag(tagger)
    rate = TT.Countrate(tagger, [single.getChannel()])
    rate.stop()  # on the virtual clock, time stands still while no measurement runs
    for _ in range(5):
        single.trigger()
    run_for(rate, SECOND // 100)
    assert rate.getCountsTotal()[0] == 5
    run_for(rate, SECOND // 100)
    assert rate.getCountsTotal()[0] == 0


def test_two_state_emitter_is_antibunched(make_tagger):
    E = TT.Experimental
    tagger = make_tagger("ultra")
    emitter = E.TwoStateExponentialSignalGenerator(tagger, 1e-6, 2e-6)
    corr = TT.Correlation(tagger, emitter.getChannel(), binwidth=50_000, n_bins=801)
    rate = TT.Countrate(tagger, [emitter.getChannel()])
    run_for(corr, SECOND)
    run_for(rate, SECOND // 10)
    g2 = corr.getDataNormalized()
    assert abs(rate.getData()[0] - 1 / 3e-6) / (1 / 3e-6) < 0.02  # one photon per excitation + lifetime
    assert g2[400] < 0.05  # no two photons within +-25 ns
    assert abs(g2[:50].mean() - 1.0) < 0.05  # uncorrelated 18..20 us apart


def test_combinations_report_each_combination_and_its_size(make_tagger):
    # Every 10 us: channels 1 and 2 click 300 ps apart; channel 3 joins every second time; Poisson 4 is isolated.
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e5),
                                   PeriodicSource(channel=2, frequency_hz=1e5, phase_ps=300),
                                   PeriodicSource(channel=3, frequency_hz=5e4, phase_ps=600)])
    combos = TT.Combinations(tagger, [1, 2, 3], 1000)
    pair, triple = combos.getChannel([1, 2]), combos.getChannel([1, 2, 3])
    two, three, one = combos.getSumChannel(2), combos.getSumChannel(3), combos.getSumChannel(1)
    assert combos.getCombination(triple) == [1, 2, 3] and combos.getChannelByMask(0b011) == pair
    rate = TT.Countrate(tagger, [pair, triple, two, three, one])
    run_for(rate, SECOND // 100)
    np.testing.assert_allclose(rate.getData(), [5e4, 5e4, 5e4, 5e4, 0], rtol=0.01)
    with pytest.raises(ValueError, match="not one of the monitored"):
        combos.getChannel([1, 7])


def test_combinations_need_empty_guard_windows(make_tagger):
    # Clicks 800 ps apart chain into one cluster spanning 1.6 ns > 1 ns window: not a combination.
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e5),
                                   PeriodicSource(channel=2, frequency_hz=1e5, phase_ps=800),
                                   PeriodicSource(channel=3, frequency_hz=1e5, phase_ps=1600)])
    combos = TT.Combinations(tagger, [1, 2, 3], 1000)
    sums = [combos.getSumChannel(n) for n in (1, 2, 3)]
    rate = TT.Countrate(tagger, sums)
    run_for(rate, SECOND // 100)
    assert rate.getCountsTotal().sum() == 0


def test_constant_fraction_discriminator_marks_the_pulse_centre(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6, pulse_width_ps=4000),
                                   PeriodicSource(channel=2, frequency_hz=1e6, pulse_width_ps=50_000)])
    cfd = TT.ConstantFractionDiscriminator(tagger, [1, 2], search_window=10_000)
    centre, too_long = cfd.getChannels()
    corr = TT.Correlation(tagger, centre, 1, binwidth=10, n_bins=1000)
    rate = TT.Countrate(tagger, [centre, too_long])
    run_for(corr, SECOND // 100)
    run_for(rate, SECOND // 100)
    assert abs(np.average(corr.getIndex(), weights=corr.getData()) - 2000) < 10  # half the 4 ns pulse
    np.testing.assert_allclose(rate.getData(), [1e6, 0])  # 50 ns pulses exceed the search window


def test_conditional_filter_channel_keeps_only_triggered_syncs(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=3, frequency_hz=10e6), PoissonSource(channel=1, rate_hz=5e4)])
    filtered = TT.ConditionalFilterChannel(tagger, [3], [1])
    rate = TT.Countrate(tagger, [1, 3, filtered.getChannel()])
    run_for(rate, SECOND // 10)
    clicks, syncs, kept = rate.getCountsTotal()
    assert syncs > 900_000 and 0.95 * clicks < kept <= clicks  # one sync after each click, the input unchanged


def test_frequency_multiplier_on_an_irregular_input_stays_in_time_order(make_tagger):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e6)])
    multiplied = TT.FrequencyMultiplier(tagger, 1, 3)
    stream = TT.TimeTagStream(tagger, 10**6, [1, multiplied.getChannel()])
    run_for(stream, SECOND // 100)  # ten chunks: extrapolations cross chunk edges
    buffer = stream.getData()
    stamps, chans = buffer.getTimestamps(), buffer.getChannels()
    inputs, out = stamps[chans == 1], stamps[chans == multiplied.getChannel()]
    assert (np.diff(out) >= 0).all()
    # Brute force: each input, then its extrapolations from the last period that come before the next input.
    expected = [inputs[0]]
    for prev, a, b in zip(inputs[:-2], inputs[1:-1], inputs[2:], strict=True):
        expected += [a + k * (a - prev) // 3 for k in range(3) if a + k * (a - prev) // 3 < b]
    np.testing.assert_array_equal(out[:len(expected)], expected)
