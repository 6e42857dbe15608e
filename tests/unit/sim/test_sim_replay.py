"""Replay: a recording played on createTimeTaggerVirtual() gives every measurement the live tags."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
from simutil import run_for

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.signals import PoissonSource

SECOND = 10**12


@pytest.fixture
def default_lab() -> Iterator[TT.TimeTagger]:
    """The built-in default lab (photon pairs on 1/2, a pulsed laser on 3/4), on the virtual clock."""
    TT.configure(clock="virtual", seed=4321)
    tagger = TT.createTimeTagger()
    yield tagger
    TT.freeTimeTagger(tagger)
    TT.configure()


@pytest.fixture
def virtual_taggers() -> Iterator[list]:
    opened: list = []
    yield opened
    for tagger in opened:
        TT.freeTimeTagger(tagger)


def _record_with_correlation(tagger, path, duration_ps):
    sync = TT.SynchronizedMeasurements(tagger)
    writer = TT.FileWriter(sync.getTagger(), str(path), [1, 2, 3, 4])
    corr = TT.Correlation(sync.getTagger(), 2, 1, binwidth=10, n_bins=2000)
    rate = TT.Countrate(sync.getTagger(), [1, 2, 3, 4])
    sync.startFor(duration_ps)
    assert sync.waitUntilFinished(60_000)
    writer.stop()
    return corr.getData(), rate.getCountsTotal()


def test_replayed_default_lab_gives_the_live_correlation(default_lab, virtual_taggers, tmp_path) -> None:
    live_corr, live_counts = _record_with_correlation(default_lab, tmp_path / "lab.ttbin", SECOND // 2)
    assert live_corr.max() > 200  # the pair peak is there
    virtual = TT.createTimeTaggerVirtual()
    virtual_taggers.append(virtual)
    corr = TT.Correlation(virtual, 2, 1, binwidth=10, n_bins=2000)
    rate = TT.Countrate(virtual, [1, 2, 3, 4])
    hist = TT.Histogram(virtual, 4, 3, binwidth=100, n_bins=500)  # the laser's decay, a third measurement
    ident = virtual.replay(str(tmp_path / "lab.ttbin"))
    assert virtual.waitForCompletion(ident, 60_000)
    np.testing.assert_array_equal(corr.getData(), live_corr)
    np.testing.assert_array_equal(rate.getCountsTotal(), live_counts)
    assert rate.getCaptureDuration() >= SECOND // 2
    decay = hist.getData()
    assert decay.sum() > 20_000 and decay[:5].sum() > decay[-100:].sum()


def test_create_with_file_waits_for_run_and_honours_begin_and_duration(make_tagger, virtual_taggers,
                                                                        tmp_path) -> None:
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e6)])
    writer = TT.FileWriter(tagger, str(tmp_path / "p.ttbin"), [1])
    stream = TT.TimeTagStream(tagger, 10**8, [1])
    run_for(TT.Countrate(tagger, [1]), SECOND // 5)
    writer.stop()
    stream.stop()
    recorded = TT.FileReader(str(tmp_path / "p.ttbin")).getData(10**8).getTimestamps()
    assert recorded.size > 150_000
    begin = int(TT.FileReader(str(tmp_path / "p.ttbin")).getData(0).tStart)

    virtual = TT.createTimeTaggerVirtual(str(tmp_path / "p.ttbin"), SECOND // 20, SECOND // 10)
    virtual_taggers.append(virtual)
    assert virtual.getChannelList() == [1]
    stream_v = TT.TimeTagStream(virtual, 10**8, [1])
    time.sleep(0.2)
    assert stream_v.getCounts() == 0  # created with a file: waits for run()
    assert virtual.run() == [1]
    assert virtual.waitUntilFinished(timeout=60_000)
    played = stream_v.getData().getTimestamps()
    window = recorded[(recorded >= begin + SECOND // 20) & (recorded < begin + SECOND // 20 + SECOND // 10)]
    assert 0 < window.size < recorded.size
    np.testing.assert_array_equal(np.diff(played), np.diff(window))
    assert played.size == window.size

    # Queued files play one after the other; replay(queue=False) drops the queue.
    first = virtual.appendFile(str(tmp_path / "p.ttbin"))
    second = virtual.replay(str(tmp_path / "p.ttbin"))
    assert virtual.waitForCompletion(timeout=60_000)
    assert second == first + 1
    twice = stream_v.getData().getTimestamps()
    assert twice.size == 2 * recorded.size and (np.diff(twice) > 0).all()


def test_replay_speed_one_takes_real_time(make_tagger, virtual_taggers, tmp_path) -> None:
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e5)])
    writer = TT.FileWriter(tagger, str(tmp_path / "s.ttbin"), [1])
    run_for(TT.Countrate(tagger, [1]), 3 * SECOND // 10)
    writer.stop()
    virtual = TT.createTimeTaggerVirtual()
    virtual_taggers.append(virtual)
    assert virtual.getReplaySpeed() < 0
    virtual.setReplaySpeed(1.0)
    assert virtual.getReplaySpeed() == 1.0
    with pytest.raises(ValueError):
        virtual.setReplaySpeed(0.05)
    rate = TT.Countrate(virtual, [1])
    started = time.monotonic()
    virtual.replay(str(tmp_path / "s.ttbin"))
    assert not virtual.waitForCompletion(timeout=100)  # still playing after 0.1 s
    assert virtual.waitForCompletion(timeout=10_000)
    elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 2.0
    assert rate.getCountsTotal()[0] == writer.getTotalEvents()

    virtual.setReplaySpeed(-1)
    virtual.replay(str(tmp_path / "s.ttbin"))
    virtual.stop()  # clears the queue: nothing left to wait for
    assert virtual.waitForCompletion(timeout=1000)


def test_input_delay_and_dead_time_act_on_the_replayed_tags(default_lab, virtual_taggers, tmp_path) -> None:
    live_corr, _ = _record_with_correlation(default_lab, tmp_path / "d.ttbin", SECOND // 5)
    virtual = TT.createTimeTaggerVirtual(str(tmp_path / "d.ttbin"))
    virtual_taggers.append(virtual)
    virtual.setInputDelay(1, 1000)  # channel 1 later by 1 ns: the pair peak moves 1 ns earlier
    virtual.setDeadtime(2, 10**9)  # at most one tag per ms on channel 2
    corr = TT.Correlation(virtual, 2, 1, binwidth=10, n_bins=2000)
    rate = TT.Countrate(virtual, [2])
    virtual.run()
    assert virtual.waitUntilFinished(timeout=60_000)
    shift = int(np.argmax(live_corr)) - int(np.argmax(corr.getData()))
    assert 95 <= shift <= 105  # 1000 ps in 10 ps bins
    assert 0 < rate.getCountsTotal()[0] <= SECOND // 5 // 10**9 + 1


class PhaseExport(TT.CustomMeasurement):
    """The vendor's Stable32Exporter pattern: a clock channel's tags, summed in groups of ``divider`` (a rect
    low-pass in integer math), minus the ideal clock: phase samples."""

    def __init__(self, tagger, clock_channel: int, period_ps: int, divider: int):
        TT.CustomMeasurement.__init__(self, tagger)
        self.clock_channel, self.period, self.divider = clock_channel, period_ps, divider
        self.pending = np.zeros(0, dtype=np.int64)
        self.phase: list[np.ndarray] = []
        self.first: int | None = None
        self.elements = 0
        self.register_channel(channel=clock_channel)
        self.finalize_init()

    def process(self, incoming_tags, begin_time, end_time):
        assert np.all(incoming_tags["type"] == 0), "a replay without overflows has only time tags"
        self.pending = np.append(self.pending, incoming_tags["time"][incoming_tags["channel"] == self.clock_channel])
        whole = self.pending.size // self.divider * self.divider
        sums = self.pending[:whole].reshape(-1, self.divider).sum(axis=1, dtype=np.int64)
        self.pending = self.pending[whole:]
        if not sums.size:
            return
        if self.first is None:
            self.first = int(sums[0])
        ideal = self.first + np.arange(self.elements, self.elements + sums.size) * self.period * self.divider**2
        self.elements += sums.size
        self.phase.append((sums - ideal) / self.divider)


def test_a_custom_measurement_exports_the_phase_of_a_replayed_clock(make_tagger, virtual_taggers, tmp_path):
    from taggerhub.sim.signals import PeriodicSource

    period, jitter, divider = 10_000_000, 50.0, 100  # a 100 kHz clock with 50 ps RMS jitter
    tagger = make_tagger("x", [PeriodicSource(channel=5, frequency_hz=1e12 / period, jitter_ps=jitter)])
    writer = TT.FileWriter(tagger, str(tmp_path / "clock.ttbin"), [5])
    run_for(TT.Countrate(tagger, [5]), SECOND // 2)
    writer.stop()
    virtual = TT.createTimeTaggerVirtual()
    virtual_taggers.append(virtual)
    export = PhaseExport(virtual, 5, period, divider)
    virtual.replay(str(tmp_path / "clock.ttbin"))
    assert virtual.waitForCompletion(timeout=60_000)
    phase = np.concatenate(export.phase)
    assert phase.size >= 0.5 * 100_000 / divider - 2  # every group of the half second played
    # a clock without drift: the phase holds the averaged jitter only, sigma / sqrt(divider) = 5 ps
    np.testing.assert_allclose(np.std(phase), jitter / np.sqrt(divider), rtol=0.15)
    assert abs(np.mean(phase)) < 3 * jitter
