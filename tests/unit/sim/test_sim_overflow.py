"""Overflow intervals reach the measurements as the vendor's do: Countrate and Counter totals keep every event,
Counter marks the bins that overlap an overflow (getOverflowMask, CounterData.overflow, NaN when normalized)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias

SECOND = 10**12
SYNC_HZ, FLUORESCENCE_HZ = 10e6, 100_300  # the default lab's channels 3 and 4


@pytest.fixture
def default_lab_realtime():
    TT.configure(clock="realtime", seed=11)
    tagger = TT.createTimeTagger()
    yield tagger
    TT.freeTimeTagger(tagger)
    TT.configure()


def stall_engine_once(tagger, seconds: float) -> tuple[threading.Event, TT.Countrate]:
    """A measurement whose next chunk costs ``seconds`` once armed: the engine falls that far behind the wall clock.

    The caller keeps the measurement: its patched ``_on_chunk`` is a reference cycle, so a dropped one would go
    whenever the cyclic garbage collector runs (before or after the stall: the cause of a flaky test).
    """
    armed = threading.Event()
    blocker = TT.Countrate(tagger, [3])
    real_on_chunk = blocker._on_chunk

    def slow_once(chunk):
        if armed.is_set():
            armed.clear()
            time.sleep(seconds)
        real_on_chunk(chunk)

    blocker._on_chunk = slow_once
    return armed, blocker


@pytest.mark.slow
def test_countrate_and_counter_through_an_overflow_interval(default_lab_realtime):
    tagger = default_lab_realtime
    armed, _blocker = stall_engine_once(tagger, 0.9)
    binwidth = SECOND // 10
    counter = TT.Counter(tagger, [3, 4], binwidth=binwidth, n_values=30)
    rate = TT.Countrate(tagger, [3, 4])
    for m in (counter, rate):
        m.startFor(2 * SECOND)
    time.sleep(0.5)
    armed.set()
    for m in (counter, rate):
        assert m.waitUntilFinished(10_000)
    assert tagger.getOverflows() >= 1
    # Countrate "works correctly even when the USB transfer rate or backend processing capabilities are exceeded"
    np.testing.assert_allclose(rate.getData(), [SYNC_HZ, FLUORESCENCE_HZ], rtol=0.01)
    np.testing.assert_allclose(counter.getDataTotalCounts(), [2 * SYNC_HZ, 2 * FLUORESCENCE_HZ], rtol=0.01)

    data = counter.getDataObject()
    assert data.size == 20
    mask = data.getOverflowMask()
    assert mask.dtype == np.int8
    assert data.overflow and 5 <= mask.sum() <= 12  # the 0.9 s stall beyond the 0.5 s of allowed lag, in 100 ms bins
    counts = data.getData()
    # The bins in overflow lost their tags; every other bin is whole.
    assert (counts[:, mask == 1].sum(axis=0) < 0.9 * (SYNC_HZ + FLUORESCENCE_HZ) / 10).any()
    whole = counts[:, mask == 0]
    np.testing.assert_allclose(whole[0], SYNC_HZ / 10, rtol=1e-3)  # periodic: exact to a tag or two
    np.testing.assert_allclose(whole[1].mean(), FLUORESCENCE_HZ / 10, rtol=0.05)
    normalized = counter.getDataNormalized(rolling=True)[:, -20:]
    np.testing.assert_array_equal(np.isnan(normalized[0]), mask == 1)  # the vendor: "bins in overflow mode are NaN"
    sweep = counter.getDataNormalized(rolling=False)[:, :20]
    np.testing.assert_array_equal(np.isnan(sweep[1]), mask == 1)


def test_counter_without_overflow_has_an_empty_mask(make_tagger):
    from taggerhub.sim.signals import PeriodicSource

    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6)])
    counter = TT.Counter(tagger, [1], binwidth=10**9, n_values=5)
    counter.startFor(10**10)
    assert counter.waitUntilFinished(10_000)
    data = counter.getDataObject()
    assert data.size == 5 and not data.overflow
    np.testing.assert_array_equal(data.getOverflowMask(), np.zeros(5, dtype=np.int8))
    assert not np.isnan(counter.getDataNormalized()).any()


class ClockPhase(TT.CustomMeasurement):
    """The vendor's PhaseNoise/Stable32Exporter pattern: demodulate a clock channel tag by tag, restart after an
    overflow (OverflowEnd); a period missing without a mark in between would ruin the phase."""

    def __init__(self, tagger, channel: int, period_ps: int):
        TT.CustomMeasurement.__init__(self, tagger)
        self.channel, self.period = channel, period_ps
        self.register_channel(channel=channel)
        self.types: dict[int, int] = {}
        self.missed = 0
        self.unmarked_gaps = 0
        self.last: int | None = None
        self.finalize_init()

    def process(self, incoming_tags, begin_time, end_time):
        kinds, counts = np.unique(incoming_tags["type"], return_counts=True)
        for kind, n in zip(kinds.tolist(), counts.tolist(), strict=True):
            self.types[kind] = self.types.get(kind, 0) + n
        self.missed += int(incoming_tags["missed_events"][incoming_tags["type"] == TT.TagType.MissedEvents].sum())
        if (incoming_tags["type"] == TT.TagType.OverflowEnd).any():
            self.last = None  # the engine hands an overflow interval over as a batch of its marks only
            return
        times = incoming_tags["time"][incoming_tags["channel"] == self.channel]
        if self.last is not None:
            times = np.concatenate([[self.last], times])
        self.unmarked_gaps += int((np.diff(times) > 1.5 * self.period).sum())
        if times.size:
            self.last = int(times[-1])


@pytest.mark.slow
def test_a_custom_measurement_sees_the_overflow_marks(default_lab_realtime):
    tagger = default_lab_realtime
    armed, _blocker = stall_engine_once(tagger, 0.9)
    phase = ClockPhase(tagger, 3, round(SECOND / SYNC_HZ))  # the default lab's 10 MHz sync
    time.sleep(0.5)
    armed.set()
    time.sleep(1.5)
    phase.stop()
    assert tagger.getOverflows() >= 1
    assert phase.types.get(TT.TagType.OverflowBegin, 0) == phase.types.get(TT.TagType.OverflowEnd, 0) >= 1
    assert phase.unmarked_gaps == 0  # every lost clock tag lies inside a marked overflow interval
    # the 0.9 s stall beyond the 0.5 s of allowed lag: at least 0.3 s of the 10 MHz clock counted as missed
    assert phase.missed >= 0.3 * SYNC_HZ
    assert phase.types[TT.TagType.TimeTag] >= 0.3 * SYNC_HZ


@pytest.mark.slow
def test_a_long_stall_at_a_low_rate_fits_the_device_buffer_and_loses_nothing(default_lab_realtime):
    """A process() that stalls 1.5 s once (numba compiling its first call) at 8 kHz: 12 k tags wait in the
    64 MTags buffer, as on the device, instead of an overflow (the vendor's PhaseInterpolator example asserts
    on one; the engine dropped tags after any 0.5 s lag)."""
    tagger = default_lab_realtime
    assert tagger.getHardwareBufferSize() == 64 * 1024 * 1024
    tagger.setTestSignal(1, True)
    tagger.setEventDivider(1, 100)  # channel 1 has no source in the default lab: 8 kHz of test signal only
    stalled = []

    class CompilesOnFirstCall(TT.CustomMeasurement):
        def __init__(self, t):
            super().__init__(t)
            self.register_channel(1)
            self.types: dict[int, int] = {}
            self.finalize_init()

        def process(self, incoming_tags, begin_time, end_time):
            if not stalled:
                stalled.append(begin_time)
                time.sleep(1.5)
            for kind in np.unique(incoming_tags["type"]):
                self.types[int(kind)] = self.types.get(int(kind), 0) + int((incoming_tags["type"] == kind).sum())

    measurement = CompilesOnFirstCall(tagger)
    measurement.startFor(2 * SECOND)
    assert measurement.waitUntilFinished(30_000)
    assert stalled and tagger.getOverflows() == 0
    assert set(measurement.types) == {int(TT.TagType.TimeTag)}
    np.testing.assert_allclose(measurement.types[int(TT.TagType.TimeTag)], 16_000, atol=1)  # 8 kHz, 2 s

    tagger.setHardwareBufferSize(32 * 1024)  # the smallest buffer: 4 s at 8 kHz; a 1.5 s stall still fits
    stalled.clear()
    measurement.startFor(2 * SECOND)
    assert measurement.waitUntilFinished(30_000)
    assert tagger.getOverflows() == 0


USB_LAB = """
[[device]]
serial = "USBLIMIT1"
model = "Time Tagger 20"

[[device.source]]
kind = "periodic"
channel = 2
frequency_hz = 12000000.0
"""


def test_past_the_usb_limit_dropped_tags_are_marked_and_counted(tmp_path):
    """A Time Tagger 20 carries 9 M tags/s; a 12 MHz input loses the rest as overflow intervals, marked in the
    stream with missed counts (not silently cut), and Countrate still counts every event."""
    lab = tmp_path / "lab.toml"
    lab.write_text(USB_LAB)
    TT.configure(lab, clock="virtual")
    try:
        tagger = TT.createTimeTagger()
        sync = TT.SynchronizedMeasurements(tagger)
        stream = TT.TimeTagStream(sync.getTagger(), 10**8, [2])
        rate = TT.Countrate(sync.getTagger(), [2])
        sync.startFor(SECOND // 10)
        assert sync.waitUntilFinished(60_000)
        data = stream.getData()
        types, missed = data.getEventTypes(), data.getMissedEvents()
        delivered = int((types == TT.TagType.TimeTag).sum())
        lost = int(missed[types == TT.TagType.MissedEvents].sum())
        assert tagger.getOverflows() >= 1
        assert (types == TT.TagType.OverflowBegin).sum() == (types == TT.TagType.OverflowEnd).sum() >= 1
        assert delivered == pytest.approx(0.9e6, rel=0.02)  # 9 M tags/s for 0.1 s
        assert delivered + lost == pytest.approx(1.2e6, rel=0.01)  # every event is either a tag or counted
        np.testing.assert_allclose(rate.getData(), [12e6], rtol=0.01)
        TT.freeTimeTagger(tagger)
    finally:
        TT.configure()


def test_a_setting_made_before_startFor_applies_to_all_of_the_acquisition(default_lab_realtime):
    """setTestSignal then startFor at once, while the engine is busy with a chunk generated before the setting:
    the acquisition starts after that chunk (the seed's SSH example once read 782,530 instead of 800,000/s)."""
    tagger = default_lab_realtime
    in_flight = threading.Event()
    blocker = TT.Countrate(tagger, [3])  # made first, so it gets each chunk before the rate does
    rate = TT.Countrate(tagger, [1])  # channel 1 has no source in the default lab: only the test signal
    real_on_chunk = blocker._on_chunk
    stall = threading.Event()

    def slow_once(chunk):
        if stall.is_set():
            stall.clear()
            in_flight.set()
            time.sleep(0.3)  # the rest of this chunk's consumers (rate) run after this
        real_on_chunk(chunk)

    blocker._on_chunk = slow_once
    time.sleep(0.05)
    stall.set()
    assert in_flight.wait(5)
    tagger.setTestSignal(1, True)
    rate.startFor(SECOND // 10)
    assert rate.waitUntilFinished(10_000)
    np.testing.assert_allclose(rate.getData(), [800e3], rtol=0.001)
