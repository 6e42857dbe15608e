"""Heavy measurements must not hold the shared realtime device back; if the engine lags, it overflows as the vendor's.

Also checks the vectorised HistogramLogBins and a fine-binned Counter against brute force on the same tags.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.enums import TagType
from taggerhub.sim.lab import DeviceSpec
from taggerhub.sim.models import model_by_name
from taggerhub.sim.signals import PeriodicSource, PhotonPairSource, PoissonSource

SECOND = 10**12


@pytest.fixture
def default_lab_realtime():
    TT.configure(clock="realtime", seed=5)  # the built-in default lab, against the wall clock
    tagger = TT.createTimeTagger()
    yield tagger
    TT.freeTimeTagger(tagger)
    TT.configure()


@pytest.mark.slow
def test_countrate_keeps_wall_time_and_rate_while_heavy_measurements_run(default_lab_realtime):
    tagger = default_lab_realtime
    fcs = TT.HistogramLogBins(tagger, 1, 1, -6, 0, 100)  # the vendor's FCS demo on the ~50 kHz channel
    corr = TT.Correlation(tagger, 1, 2, binwidth=10, n_bins=1000)
    counter = TT.Counter(tagger, [1, 2, 3, 4], binwidth=1000, n_values=1000)  # 1 ns bins
    time.sleep(0.5)  # let the log-bins histogram fill its one-second window
    rate = TT.Countrate(tagger, [1, 3, 4])
    began = time.monotonic()
    rate.startFor(SECOND)
    assert rate.waitUntilFinished(5000)
    wall = time.monotonic() - began
    assert wall < 1.2, f"a 1 s Countrate took {wall:.2f} s of wall time"
    # Default lab: pairs 200 kHz x 0.25 + 200 Hz dark counts, a 10 MHz sync, 100 kHz + 300 Hz fluorescence.
    # Photon counts in 1 s are Poisson: within 5 standard deviations (1% would be 2.2 sigma on channel 1).
    expected = np.array([50_200, 10e6, 100_300])
    assert np.all(np.abs(rate.getData() - expected) <= 5 * np.sqrt(expected)), rate.getData()
    assert tagger.getOverflows() == 0
    assert fcs.getData().sum() > 0 and corr.getData().sum() > 0 and counter.getDataTotalCounts().sum() > 0


@pytest.mark.slow
def test_an_engine_that_falls_behind_overflows_instead_of_stretching_time(default_lab_realtime):
    tagger = default_lab_realtime
    slow = TT.Countrate(tagger, [3])
    real_on_chunk = slow._on_chunk

    def too_slow(chunk):  # a measurement that costs more than the time it is given
        time.sleep(0.05)
        real_on_chunk(chunk)

    slow._on_chunk = too_slow
    stream = TT.TimeTagStream(tagger, 10**8, [1])
    rate = TT.Countrate(tagger, [3])
    began = time.monotonic()
    rate.startFor(SECOND)
    assert rate.waitUntilFinished(5000)
    wall = time.monotonic() - began
    assert wall < 2.0, f"time stretched: 1 s of tags took {wall:.2f} s"
    assert tagger.getOverflows() > 0
    # Tags were lost, not delayed; the Countrate still counts them, as the vendor's does (it gets missed events).
    np.testing.assert_allclose(rate.getData()[0], 10e6, rtol=0.01)
    buffer = stream.getData()
    types, missed = buffer.getEventTypes(), buffer.getMissedEvents()
    assert buffer.hasOverflows
    begins, ends = (types == TagType.OverflowBegin).sum(), (types == TagType.OverflowEnd).sum()
    assert begins == ends >= 1
    lost = int(missed[types == TagType.MissedEvents].sum())
    kept = int((types == TagType.TimeTag).sum())
    # Every ~50 kHz tag of the stream is either delivered or counted as missed: nothing vanishes unreported.
    span_s = (buffer.tGetData - buffer.tStart) / SECOND
    assert lost > 0 and abs(lost + kept - 50_200 * span_s) < 0.05 * 50_200 * span_s


def test_log_bins_histogram_equals_brute_force_pair_counting(make_tagger):
    tagger = make_tagger("ultra", [PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=2e5, delay_ps=3000,
                                                    jitter_a_ps=200.0), PoissonSource(channel=1, rate_hz=1e5)])
    auto = TT.HistogramLogBins(tagger, 1, 1, -9, -4, 40)
    cross = TT.HistogramLogBins(tagger, 2, 1, -10, -5, 30)
    custom = TT.HistogramCustomBins(tagger, 1, 1, [0, 5000, 10**5, 10**7])  # from 0: self-pairs excluded
    stream = TT.TimeTagStream(tagger, 10**7, [1, 2])
    for m in (auto, cross, custom, stream):
        m.stop()
        m.clear()
    for m in (auto, cross, custom, stream):
        m.startFor(SECOND // 20)
    for m in (auto, cross, custom, stream):
        assert m.waitUntilFinished(60_000)
    buffer = stream.getData()
    stamps, chans = buffer.getTimestamps(), buffer.getChannels()
    ones, twos = stamps[chans == 1], stamps[chans == 2]
    for hist, clicks, starts in ((auto, ones, ones), (cross, twos, ones), (custom, ones, ones)):
        edges = hist.getBinEdges()
        expected = np.zeros(edges.size - 1, dtype=np.int64)
        lo = np.searchsorted(starts, clicks - edges[-1], side="right")  # starts with c - s < last edge
        hi = np.searchsorted(starts, clicks - edges[0], side="right")  # ... and c - s >= first edge
        for c, a, b in zip(clicks, lo, hi, strict=True):
            dt = c - starts[a:b]
            dt = dt[dt > 0] if clicks is starts else dt
            expected += np.bincount(np.searchsorted(edges, dt, side="right") - 1, minlength=expected.size)
        assert expected.sum() > 1000
        np.testing.assert_array_equal(hist.getData(), expected)


@pytest.mark.parametrize(("binwidth", "n_values"), [(1000, 50), (1000, 10**6), (7_777_777, 3)])
def test_counter_with_fine_bins_equals_binning_the_stream(make_tagger, binwidth, n_values):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=5e6), PeriodicSource(channel=2, frequency_hz=3e6)])
    # Started together (two startFor calls in a row could straddle an engine chunk and offset the bins).
    group = TT.SynchronizedMeasurements(tagger)
    counter = TT.Counter(group.getTagger(), [1, 2], binwidth=binwidth, n_values=n_values)
    stream = TT.TimeTagStream(group.getTagger(), 10**7, [1, 2])
    duration = 25_000_000_123  # not a multiple of the chunk or the binwidth
    group.startFor(duration)
    assert group.waitUntilFinished(60_000)
    buffer = stream.getData()
    stamps, chans = buffer.getTimestamps(), buffer.getChannels()
    begin = buffer.tStart
    n_closed = duration // binwidth
    data = counter.getData(rolling=True)
    shown = min(n_closed, n_values)
    for row, ch in enumerate((1, 2)):
        bins = (stamps[chans == ch] - begin) // binwidth
        per_bin = np.bincount(bins[bins < n_closed], minlength=n_closed)
        np.testing.assert_array_equal(data[row, n_values - shown:], per_bin[n_closed - shown:])
        assert counter.getDataTotalCounts()[row] == per_bin.sum()


@pytest.mark.parametrize(("exp_start", "exp_stop", "n_bins"), [(-10, -6, 100), (-10, -8, 300), (-6, 0, 100),
                                                               (-11.3, -10.1, 7)])
def test_log_bins_index_from_the_logarithm_equals_a_binary_search(make_tagger, exp_start, exp_stop, n_bins):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e3)])
    hist = TT.HistogramLogBins(tagger, 1, 1, exp_start, exp_stop, n_bins)
    edges = hist.getBinEdges()
    rng = np.random.default_rng(3)
    # every edge, its neighbours, and random values over the whole range
    dt = np.concatenate([edges[:-1], edges[1:] - 1, edges[:-1] + 1, rng.integers(edges[0], edges[-1], 10**5)])
    dt = dt[(dt >= edges[0]) & (dt < edges[-1])]
    np.testing.assert_array_equal(hist._bins_of(dt), np.searchsorted(edges, dt, side="right") - 1)


@pytest.mark.slow
def test_an_engine_that_cannot_keep_up_at_all_still_follows_the_wall_clock(default_lab_realtime):
    """Generating tags at half real time: overflows must not outgrow each other (each window generated whole
    took twice its length, so the next was twice as long) but keep capture time on the wall clock."""
    tagger = default_lab_realtime
    stage = tagger._stage
    real_process = stage.process

    def half_speed(wanted, t0, t1):
        time.sleep(2 * (t1 - t0) / SECOND)
        return real_process(wanted, t0, t1)

    stage.process = half_speed
    rate = TT.Countrate(tagger, [3])  # the 10 MHz sync: its missed counts are regular enough to check
    began = time.monotonic()
    time.sleep(6)
    lag_s = (time.monotonic() - began) - rate.getCaptureDuration() / SECOND
    stage.process = real_process
    assert tagger.getOverflows() >= 2
    assert lag_s < 2.0, f"capture time fell {lag_s:.1f} s behind the wall clock"
    # Missed tags are counted (estimated from a sample for a long window): the rate is still ~10 MHz.
    np.testing.assert_allclose(rate.getData()[0], 10e6, rtol=0.05)


class MarkedCounts(TT.CustomMeasurement):
    """Counts delivered tags and the device's overflow marking; sorts every chunk's times (real per-tag work)."""

    def __init__(self, tagger, channel: int):
        super().__init__(tagger)
        self.delivered = self.missed = self.begins = self.ends = 0
        self.register_channel(channel)
        self.finalize_init()

    def process(self, incoming_tags, begin_time, end_time):
        kinds = incoming_tags["type"]
        self.delivered += int((kinds == TagType.TimeTag).sum())
        self.missed += int(incoming_tags["missed_events"][kinds == TagType.MissedEvents].sum())
        self.begins += int((kinds == TagType.OverflowBegin).sum())
        self.ends += int((kinds == TagType.OverflowEnd).sum())
        np.sort(incoming_tags["time"])


@pytest.mark.slow
def test_a_lab_too_fast_for_the_machine_keeps_capture_time_rising_with_the_wall_clock():
    """75 M tags/s of Poisson light (below the Time Tagger X's USB limit, far above what this engine generates
    and a Python process() sorts): capture time must rise steadily with wall time, never jump or freeze; the
    loss is reported as the vendor's overflows and marked in a CustomMeasurement's incoming tags."""
    rate_hz = 75e6
    spec = model_by_name("Time Tagger X")
    source = PoissonSource(channel=1, rate_hz=rate_hz)
    TT.configure(devices=[DeviceSpec(serial="FASTLAB", model=spec, sources=[source])], clock="realtime", seed=7)
    tagger = TT.createTimeTagger()
    try:
        custom = MarkedCounts(tagger, 1)
        rate = TT.Countrate(tagger, [1])
        began = time.monotonic()
        samples = []
        while time.monotonic() - began < 6.0:
            time.sleep(0.1)
            samples.append((time.monotonic() - began, rate.getCaptureDuration() / SECOND))
        with custom.mutex:
            delivered, missed, begins, ends = custom.delivered, custom.missed, custom.begins, custom.ends
        overflows = tagger.getOverflows()
        capture_s = rate.getCaptureDuration() / SECOND
        counted = rate.getData()[0] * capture_s
    finally:
        TT.freeTimeTagger(tagger)
        TT.configure()
    wall, capture = np.array(samples).T
    assert np.all(np.diff(capture) >= 0), "capture time went backwards"
    assert capture[-1] - capture[0] < (wall[-1] - wall[0]) + 0.1, "capture time jumped ahead of the wall clock"
    # Rising with the wall clock: over every two seconds it advances, and it never lags far behind (bounds wide
    # enough for a machine shared by many processes, where this thread may get a fraction of a core).
    earlier = np.interp(wall[wall >= 2.0] - 2.0, wall, capture)
    assert np.all(capture[wall >= 2.0] - earlier > 0.3), list(zip(wall, capture, strict=True))
    assert np.all(wall - capture < 3.0), f"capture fell behind: {list(zip(wall, capture, strict=True))}"
    assert overflows > 0 and begins >= 1 and ends >= 1, (overflows, begins, ends)
    assert missed > delivered / 10, "the engine kept up: this lab is meant to be too fast for it"
    # Every tag is either delivered or marked missed: their sum is the lab's rate (missed counts of a long
    # overflow are scaled from a sample, so within 10%); the Countrate counts the missed ones too.
    np.testing.assert_allclose(delivered + missed, rate_hz * capture_s, rtol=0.1)
    np.testing.assert_allclose(counted, rate_hz * capture_s, rtol=0.1)
