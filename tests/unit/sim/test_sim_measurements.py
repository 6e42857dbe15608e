"""Physics of the simulated measurements: what each one computes from a known signal."""

from __future__ import annotations

import numpy as np
import pytest
from simutil import run_for

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.signals import PeriodicSource, PhotonPairSource, PoissonSource, PulsedLaserSource

SECOND = 10**12
ULTRA_JITTER_PS = 9.0


def _peak_moments(index: np.ndarray, data: np.ndarray, half_width: int) -> tuple[float, float]:
    """Mean and RMS of the peak around the maximum, background subtracted."""
    centre = index[data.argmax()]
    window = np.abs(index - centre) < half_width
    background = np.median(data[~window])
    signal = np.clip(data[window] - background, 0, None)
    mean = np.average(index[window], weights=signal)
    rms = np.sqrt(np.average((index[window] - mean) ** 2, weights=signal))
    return float(mean), float(rms)


def test_correlation_of_a_pair_source_peaks_at_the_delay_with_the_set_width(make_tagger):
    pairs = PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=2e5, delay_ps=3000,
                             efficiency_a=0.5, efficiency_b=0.5, jitter_a_ps=40.0, jitter_b_ps=30.0)
    tagger = make_tagger("ultra", [pairs, PoissonSource(channel=2, rate_hz=1e5)])
    corr = TT.Correlation(tagger, 2, 1, binwidth=10, n_bins=2000)
    run_for(corr, 2 * SECOND)
    mean, rms = _peak_moments(corr.getIndex(), corr.getData(), 500)
    expected_rms = np.sqrt(40.0**2 + 30.0**2 + 2 * ULTRA_JITTER_PS**2)
    assert abs(mean - 3000) < 5
    assert abs(rms - expected_rms) / expected_rms < 0.05


def test_correlation_normalisation_is_one_for_uncorrelated_sources(make_tagger):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=2e5), PoissonSource(channel=2, rate_hz=3e5)])
    corr = TT.Correlation(tagger, 1, 2, binwidth=1000, n_bins=200)
    run_for(corr, 2 * SECOND)
    g2 = corr.getDataNormalized()
    assert corr.getData().dtype == np.int32 and g2.dtype == np.float64
    assert abs(g2.mean() - 1.0) < 0.01


def test_autocorrelation_of_a_clock_has_peaks_at_multiples_of_its_period(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e7)])
    corr = TT.Correlation(tagger, 1, binwidth=1000, n_bins=501)
    run_for(corr, SECOND // 100)
    data, index = corr.getData(), corr.getIndex()
    peaks = index[data > data.max() / 2]
    np.testing.assert_array_equal(peaks % 100_000, 0)
    assert 0 not in peaks  # a tag does not correlate with itself


def test_counter_bin_sums_equal_the_total_counts(make_tagger):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=3e5), PoissonSource(channel=2, rate_hz=1e5)])
    sync = TT.SynchronizedMeasurements(tagger)
    counter = TT.Counter(sync.getTagger(), [1, 2], binwidth=10**10, n_values=100)
    rate = TT.Countrate(sync.getTagger(), [1, 2])
    sync.startFor(SECOND)
    assert sync.waitUntilFinished(60_000)
    data = counter.getData()
    assert data.shape == (2, 100) and data.dtype == np.int32
    np.testing.assert_array_equal(data.sum(axis=1), rate.getCountsTotal())
    np.testing.assert_array_equal(counter.getDataTotalCounts(), rate.getCountsTotal())
    np.testing.assert_allclose(counter.getDataNormalized().mean(axis=1), [3e5, 1e5], rtol=0.02)
    snapshot = counter.getDataObject(remove=True)
    assert snapshot.size == 100
    np.testing.assert_array_equal(snapshot.getData(), data)
    assert (np.diff(snapshot.getTime()) == 10**10).all()
    assert counter.getDataObject().size == 0  # removed


def test_counter_rolling_puts_the_newest_bin_last(make_tagger):
    tagger = make_tagger("ultra")
    tagger.setTestSignal(1, True)
    counter = TT.Counter(tagger, [1], binwidth=10**9, n_values=10)
    run_for(counter, 3 * 10**9)
    rolling, filled = counter.getData(rolling=True)[0], counter.getData(rolling=False)[0]
    assert (rolling[:7] == 0).all() and (rolling[7:] == 800).all()
    assert (filled[:3] == 800).all() and (filled[3:] == 0).all()
    assert np.isnan(counter.getDataNormalized()[0][:7]).all()


def test_histogram_of_a_pulsed_laser_decays_with_the_lifetime(make_tagger):
    laser = PulsedLaserSource(sync_channel=3, photon_channels=(4,), repetition_hz=1e7,
                              detection_rate_hz=5e5, lifetime_ps=2000.0, jitter_ps=5.0)
    tagger = make_tagger("ultra", [laser])
    hist = TT.Histogram(tagger, 4, 3, binwidth=100, n_bins=1000)
    run_for(hist, SECOND)
    data, index = hist.getData().astype(float), hist.getIndex()
    fit = (index >= 500) & (index < 8000)
    slope = np.polyfit(index[fit], np.log(data[fit]), 1)[0]
    assert abs(-1 / slope - 2000) / 2000 < 0.05


def test_startstop_pairs_each_click_with_the_latest_start(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6),
                                   PeriodicSource(channel=2, frequency_hz=1e6, phase_ps=250_000)])
    tagger.setDeadtime(1, 2000)
    ss = TT.StartStop(tagger, 2, 1, binwidth=1000)
    run_for(ss, SECOND // 100)
    data = ss.getData()
    assert data.dtype == np.int64 and data.shape[1] == 2
    assert set(data[:, 0].tolist()) <= {249_000, 250_000}
    assert abs(data[:, 1].sum() - 10_000) <= 1


def test_timedifferences_steps_through_histograms_on_next_channel(make_tagger):
    # Clicks 250 ns after each start; the "next" marker fires every 10 us, so the histogram index grows.
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6),
                                   PeriodicSource(channel=2, frequency_hz=1e6, phase_ps=250_000),
                                   PeriodicSource(channel=3, frequency_hz=1e5, phase_ps=500_000)])
    td = TT.TimeDifferences(tagger, 2, 1, next_channel=3, binwidth=100_000, n_bins=10, n_histograms=4)
    run_for(td, SECOND // 1000)
    data = td.getData()
    assert data.shape == (4, 10) and data.dtype == np.int32
    assert (data[:, 0:2].sum() == 0) and (data[:, 3:].sum() == 0)
    counts = data[:, 2]
    assert counts.sum() >= 999 and (np.abs(counts - counts.mean()) <= 10).all()
    assert td.getCounts() >= 24  # 100 next-markers over 4 histograms


def test_countbetweenmarkers_counts_clicks_between_begin_tags(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e7),
                                   PeriodicSource(channel=2, frequency_hz=1e5, phase_ps=50_000)])
    cbm = TT.CountBetweenMarkers(tagger, 1, 2, n_values=200)
    run_for(cbm, SECOND // 100)
    assert cbm.ready()
    np.testing.assert_array_equal(cbm.getData(), 100)
    # Begin tags carry the tagger's jitter (9 ps RMS on the Ultra).
    np.testing.assert_allclose(cbm.getBinWidths(), 10_000_000, atol=100)
    np.testing.assert_allclose(np.diff(cbm.getIndex()), 10_000_000, atol=100)


def test_timetagstream_returns_every_tag_once_in_time_order(make_tagger):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e5), PoissonSource(channel=2, rate_hz=2e5)])
    sync = TT.SynchronizedMeasurements(tagger)
    stream = TT.TimeTagStream(sync.getTagger(), 10**7, [1, 2])
    rate = TT.Countrate(sync.getTagger(), [1, 2])
    sync.startFor(SECOND // 10)
    assert sync.waitUntilFinished(60_000)
    buf = stream.getData()
    stamps, chans = buf.getTimestamps(), buf.getChannels()
    assert stamps.dtype == np.int64 and chans.dtype == np.int32 and buf.size == stamps.size
    assert (np.diff(stamps) >= 0).all()
    assert [(chans == c).sum() for c in (1, 2)] == rate.getCountsTotal().tolist()
    assert stream.getData().size == 0  # handed out once


def test_synchronized_measurements_do_not_autostart_and_see_the_same_tags(make_tagger):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e6)])
    sync = TT.SynchronizedMeasurements(tagger)
    a = TT.Countrate(sync.getTagger(), [1])
    b = TT.Countrate(tagger, [1])
    sync.registerMeasurement(b)
    assert not a.isRunning()
    sync.startFor(SECOND // 10)
    assert sync.waitUntilFinished(60_000)
    assert a.getCountsTotal()[0] == b.getCountsTotal()[0] > 0
    assert isinstance(sync.getTagger(), TT.TimeTaggerBase)


def test_histogram_log_bins_g2_is_one_for_uncorrelated_and_peaks_for_pairs(make_tagger):
    pairs = PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=1e5, delay_ps=50_000, jitter_a_ps=100.0)
    tagger = make_tagger("ultra", [pairs, PoissonSource(channel=3, rate_hz=2e5), PoissonSource(channel=4, rate_hz=3e5)])
    uncorrelated = TT.HistogramLogBins(tagger, 4, 3, -10, -6, 20)
    correlated = TT.HistogramLogBins(tagger, 2, 1, -10, -6, 20)
    sync = TT.SynchronizedMeasurements(tagger)
    for m in (uncorrelated, correlated):
        sync.registerMeasurement(m)
    sync.startFor(2 * SECOND)
    assert sync.waitUntilFinished(60_000)
    edges = uncorrelated.getBinEdges()
    assert edges.size == 21 and edges[0] == 100 and edges[-1] == 1_000_000
    g2 = uncorrelated.getDataObject().getG2()
    wide = np.diff(edges) > 10_000  # bins with enough counts for a 5 % check
    np.testing.assert_allclose(g2[wide], 1.0, atol=0.05)
    data = correlated.getDataObject()
    peak = np.searchsorted(edges, 50_000, side="right") - 1
    assert data.getCounts().argmax() == peak and data.getG2()[peak] > 100


def test_sampler_reports_the_input_level_at_each_trigger(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=2, frequency_hz=1e6, pulse_width_ps=250_000),
                                   PoissonSource(channel=1, rate_hz=1e5)])
    sampler = TT.Sampler(tagger, 1, [2], max_triggers=100_000)
    run_for(sampler, SECOND // 10)
    rows = sampler.getData()
    assert rows.dtype == np.int64 and rows.shape[1] == 2 and rows.shape[0] > 9000
    states = rows[:, 1]
    assert set(states.tolist()) <= {0, 1}  # the 1 MHz input has an edge before nearly every trigger
    assert abs((states == 1).mean() - 0.25) < 0.02  # high for 250 of every 1000 ns
    assert sampler.getData().shape[0] == 0  # handed out once


def test_trigger_on_countrate_fires_on_each_rate_step(make_tagger):
    # A 1 MHz Poisson source switched on for 500 us every 1 ms; threshold 500 kHz +- 100 kHz in a 100 us window.
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e6),
                                   PeriodicSource(channel=2, frequency_hz=1e3, pulse_width_ps=500_000_000)])
    gated = TT.GatedChannel(tagger, 1, 2, -2)
    trigger = TT.TriggerOnCountrate(tagger, gated.getChannel(), 5e5, 1e5, 100_000_000)
    above, below = trigger.getChannels()
    assert (above, below) == (trigger.getChannelAbove(), trigger.getChannelBelow())
    rate = TT.Countrate(tagger, [above, below])
    stream = TT.TimeTagStream(tagger, 10**5, [2, above])
    run_for(rate, SECOND // 10)
    run_for(stream, SECOND // 100)
    np.testing.assert_allclose(rate.getData(), [1000, 1000], rtol=0.02)
    buf = stream.getData()
    stamps, chans = buf.getTimestamps(), buf.getChannels()
    opens, fires = stamps[chans == 2], stamps[chans == above]
    delay = fires[:, None] - opens[None, :]
    lag = np.where(delay >= 0, delay, np.iinfo(np.int64).max).min(axis=1)
    # 60 counts of a 1 MHz source take about 60 us after the gate opens.
    assert (np.abs(lag - 60_000_000) < 30_000_000).all()


def test_histogram_custom_bins_counts_pairs_in_the_given_bins(make_tagger):
    pairs = PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=1e5, delay_ps=50_000)
    tagger = make_tagger("ultra", [pairs, PoissonSource(channel=2, rate_hz=1e5)])
    hist = TT.HistogramCustomBins(tagger, 2, 1, [0, 40_000, 60_000, 1_000_000, 10_000_000])
    run_for(hist, SECOND)
    data = hist.getDataObject()
    counts, g2 = data.getCounts(), data.getG2()
    assert counts.dtype == np.uint64 and counts.size == 4
    assert g2[1] > 100  # the pair peak at 50 ns
    np.testing.assert_allclose(g2[[0, 3]], 1.0, atol=0.05)
    with pytest.raises(ValueError, match="strictly increasing"):
        TT.HistogramCustomBins(tagger, 2, 1, [10, 5])


def test_correlation_pairs_match_single_correlations(make_tagger):
    pairs = PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=1e5, delay_ps=3000)
    tagger = make_tagger("ultra", [pairs, PoissonSource(channel=3, rate_hz=1e5)])
    sync = TT.SynchronizedMeasurements(tagger)
    both = TT.CorrelationPairs(sync.getTagger(), [1, 2, 3], binwidth=100, n_bins=100)
    single = TT.Correlation(sync.getTagger(), 2, 1, binwidth=100, n_bins=100)
    auto = TT.Correlation(sync.getTagger(), 3, binwidth=100, n_bins=100)
    rate = TT.Countrate(sync.getTagger(), [3])
    sync.startFor(SECOND // 10)
    assert sync.waitUntilFinished(60_000)
    data = both.getDataObject()
    counts = data.getCounts()
    assert counts.shape == (3, 3, 100) and counts.dtype == np.int32
    np.testing.assert_array_equal(counts[1, 0], single.getData())
    assert counts[0, 1].sum() == counts[1, 0].sum()  # the same pairs, seen from the other channel
    assert abs(data.getIndex()[counts[0, 1].argmax()] + 3000) == 50  # a bin next to -3000 ps
    np.testing.assert_array_equal(counts[2, 2], auto.getData())
    with_self = data.getCounts(exclude_self_coincidences=False)
    assert with_self[2, 2, 50] - counts[2, 2, 50] == rate.getCountsTotal()[0]  # one self-pair per tag at 0
    np.testing.assert_array_equal(data.getIndex(), single.getIndex())


def test_the_synchronized_proxy_tagger_cannot_be_freed(make_tagger):
    tagger = make_tagger("ultra")
    tagger.setTestSignal(1, True)
    sync = TT.SynchronizedMeasurements(tagger)
    with pytest.raises(ValueError, match=r"SynchronizedMeasurements\.getTagger"):
        TT.freeTimeTagger(sync.getTagger())
    rate = TT.Countrate(tagger, [1])
    run_for(rate, SECOND // 100)  # the real tagger still works
    assert rate.getCountsTotal()[0] == 8000


def test_histogram2d_places_each_start_at_its_two_first_stops(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6),
                                   PeriodicSource(channel=2, frequency_hz=1e6, phase_ps=120_000),
                                   PeriodicSource(channel=3, frequency_hz=1e6, phase_ps=340_000)])
    hist = TT.Histogram2D(tagger, 1, 2, 3, 100_000, 100_000, 5, 5)
    run_for(hist, SECOND // 1000)
    data = hist.getData()
    assert data.shape == (5, 5) and data.dtype == np.int32
    assert data[1, 3] == data.sum() and abs(data.sum() - 1000) <= 1  # (120 ns, 340 ns) for every start
    assert hist.getIndex().shape == (5, 5, 2) and hist.getIndex()[1, 3].tolist() == [100_000, 300_000]


def test_frequency_counter_measures_frequency_and_phase_drift(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=10e6, jitter_ps=20.0),
                                   PeriodicSource(channel=2, frequency_hz=10.001e6)])
    counter = TT.FrequencyCounter(tagger, [1, 2], sampling_interval=10**9, fitting_window=10**8)
    run_for(counter, SECOND // 100)
    data = counter.getDataObject(remove=True)
    assert data.size == 9 and data.getIndex().tolist() == list(range(1, 10))
    freq = data.getFrequency()
    assert np.isnan(freq[:, 0]).all()
    # Phase noise of a 1000-tag fit with ~22 ps RMS jitter: ~1e-5 cycles, so ~0.01 Hz over 1 ms.
    np.testing.assert_allclose(freq[:, 1:], [[10e6] * 8, [10.001e6] * 8], atol=0.1)
    np.testing.assert_allclose(data.getFrequencyInstantaneous(), [[10e6] * 9, [10.001e6] * 9], rtol=1e-7)
    drift = data.getPhase(10e6)[1]  # the 1 kHz offset gains one cycle per ms
    np.testing.assert_allclose(np.diff(drift), 1.0, atol=1e-3)
    assert data.getPeriodsCount().shape == (2, 9) and data.getPeriodsCount().dtype == np.int64
    assert counter.getDataObject().size == 0  # removed
