"""Scope, HistogramND and Dump against what the configured sources must give (issue 17 item 9)."""

from __future__ import annotations

import numpy as np

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.scope import TAG_RECORD
from taggerhub.sim.signals import PeriodicSource, PoissonSource

MS = 10**9


def acquire(duration_ps: int, *measurements) -> None:
    for m in measurements:
        m.stop()
        m.clear()
    for m in measurements:
        m.startFor(duration_ps)
    for m in measurements:
        assert m.waitUntilFinished(60_000)


def test_scope_traces_show_both_edges_relative_to_each_trigger(make_tagger):
    # 1 MHz pulses 100 ns wide on 1; trigger 0.25 us after every ms on 2 (the input is low then).
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6, pulse_width_ps=100_000),
                                   PeriodicSource(channel=2, frequency_hz=1e3, phase_ps=250_000)])
    scope = TT.Scope(tagger, [1], 2, window_size=3_000_000, n_traces=3)
    acquire(10 * MS, scope)
    assert scope.ready() and scope.triggered() == 3 and scope.getWindowSize() == 3_000_000
    data = scope.getData()
    assert len(data) == 3
    expected = [(0, TT.LOW)] + [(k * 1_000_000 + off, st) for k in range(3)
                                for off, st in ((750_000, TT.HIGH), (850_000, TT.LOW))]
    for trace in data:  # within the inputs' timing jitter (tens of ps)
        assert [e.state for e in trace] == [st for _, st in expected]
        np.testing.assert_allclose([e.time for e in trace], [t for t, _ in expected], atol=300)


def test_scope_trace_across_chunks_and_retriggering_after_the_window(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6, pulse_width_ps=100_000),
                                   PeriodicSource(channel=2, frequency_hz=1e3, phase_ps=250_000)])
    window = 2_500_000_000  # 2.5 ms: triggers at 0, 3, 6, 9 ms; the last window crosses the 10 ms chunk edge
    scope = TT.Scope(tagger, [1], 2, window_size=window, n_traces=4, n_max_events=10_000)
    acquire(20 * MS, scope)
    assert scope.triggered() == 4
    for trace in scope.getData():
        times = np.array([e.time for e in trace[1:]])
        assert trace[0].state == TT.LOW and times.size == 5000
        np.testing.assert_allclose(times[0::2], np.arange(2500) * 1_000_000 + 750_000, atol=300)
        np.testing.assert_allclose(times[1::2], np.arange(2500) * 1_000_000 + 850_000, atol=300)


def test_scope_limits_events_and_reports_unknown_state_before_any_edge(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6, phase_ps=500_000),
                                   PeriodicSource(channel=2, frequency_hz=1e3, phase_ps=100_000)])
    scope = TT.Scope(tagger, [1], 2, window_size=10**8, n_traces=1, n_max_events=7)
    acquire(MS, scope)
    (trace,) = scope.getData()
    assert (trace[0].time, trace[0].state) == (0, TT.UNKNOWN) and len(trace) == 7
    assert abs(trace[1].time - 400_000) < 300 and trace[1].state == TT.HIGH


def test_histogram_nd_puts_fixed_delays_in_one_bin(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6),
                                   PeriodicSource(channel=2, frequency_hz=1e6, phase_ps=3_400),
                                   PeriodicSource(channel=3, frequency_hz=1e6, phase_ps=7_600),
                                   PeriodicSource(channel=4, frequency_hz=1e6, phase_ps=1_200)])
    hist = TT.HistogramND(tagger, 1, [2, 3, 4], [1000, 1000, 500], [5, 10, 4])
    acquire(5 * MS, hist)
    data = hist.getData().reshape(5, 10, 4)
    assert data[3, 7, 2] in (4999, 5000) and data.sum() == data[3, 7, 2]
    np.testing.assert_array_equal(hist.getIndex(2), [0, 500, 1000, 1500])


def test_histogram_nd_in_two_dimensions_equals_histogram_2d(make_tagger):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=2e5), PoissonSource(channel=2, rate_hz=1e6),
                                   PoissonSource(channel=3, rate_hz=3e6)])
    nd = TT.HistogramND(tagger, 1, [2, 3], [10_000, 5_000], [40, 30])
    two = TT.Histogram2D(tagger, 1, 2, 3, 10_000, 5_000, 40, 30)
    acquire(60 * MS, nd, two)
    assert two.getData().sum() > 1000
    np.testing.assert_array_equal(nd.getData(), two.getData().ravel())


def test_dump_writes_every_tag_as_a_128_bit_record(make_tagger, tmp_path):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e6), PoissonSource(channel=2, rate_hz=5e5)])
    path = tmp_path / "tags.dump"
    dump = TT.Dump(tagger, str(path), -1, [1, 2])
    stream = TT.TimeTagStream(tagger, 10**6, [1, 2])
    acquire(25 * MS, dump, stream)
    dump.stop()
    records = np.fromfile(path, dtype=TAG_RECORD)
    buffer = stream.getData()
    assert TAG_RECORD.itemsize == 16 and records.size > 30_000
    np.testing.assert_array_equal(records["time"], buffer.getTimestamps())
    np.testing.assert_array_equal(records["channel"], buffer.getChannels())
    assert (records["type"] == 0).all()


def test_dump_stops_after_max_tags(make_tagger, tmp_path):
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e6)])
    path = tmp_path / "first.dump"
    dump = TT.Dump(tagger, str(path), 1234, [1])
    acquire(50 * MS, dump)
    assert not dump.isRunning()
    records = np.fromfile(path, dtype=TAG_RECORD)
    assert records.size == 1234 and (np.diff(records["time"]) > 0).all()
