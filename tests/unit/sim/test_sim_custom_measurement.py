"""CustomMeasurement: vendor-style Python measurements on the simulated tag stream."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import numpy as np
import pytest
from simutil import run_for

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.signals import PhotonPairSource, PoissonSource

SECOND = 10**12


@pytest.fixture
def vendor_style(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The vendor-style measurements module, imported with ``TimeTagger`` resolving to the simulator."""
    monkeypatch.setitem(sys.modules, "TimeTagger", TT)
    monkeypatch.delitem(sys.modules, "vendor_style_custom", raising=False)
    return importlib.import_module("vendor_style_custom")


def test_incoming_tags_dtype_is_the_vendors() -> None:
    dtype = TT.CustomMeasurement.INCOMING_TAGS_DTYPE
    assert dtype.names == ("type", "missed_events", "channel", "time")
    assert [dtype.fields[n][0].str for n in dtype.names] == ["|u1", "<u2", "<i4", "<i8"]
    assert [dtype.fields[n][1] for n in dtype.names] == [0, 2, 4, 8]
    assert dtype.itemsize == 16


def test_counts_per_channel_match_countrate_on_the_same_tags(make_tagger, vendor_style) -> None:
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=3e5), PoissonSource(channel=2, rate_hz=1e5)])
    sync = TT.SynchronizedMeasurements(tagger)
    custom = vendor_style.CountPerChannel(sync.getTagger(), [1, 2])
    rate = TT.Countrate(sync.getTagger(), [1, 2])
    assert not custom.isRunning()  # created on the synchronized proxy: waits for the group
    sync.startFor(SECOND)
    assert sync.waitUntilFinished(60_000)
    counts = custom.getData()
    assert counts[0] > 250_000 and counts[1] > 80_000
    assert custom.getCaptureDuration() == SECOND
    np.testing.assert_allclose(counts / (custom.getCaptureDuration() / SECOND), rate.getData(), rtol=1e-12)
    assert (custom.starts, custom.stops) == (1, 1)


def test_counts_of_a_separately_run_measurement_match_countrate_within_one_percent(make_tagger, vendor_style) -> None:
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=5e5), PoissonSource(channel=3, rate_hz=2e5)])
    custom = vendor_style.CountPerChannel(tagger, [1, 3])
    assert custom.isRunning() and custom.is_running()  # finalize_init starts it
    run_for(custom, SECOND)
    rate = TT.Countrate(tagger, [1, 3])
    run_for(rate, SECOND)  # a later second of the stream: other tags, same rates
    np.testing.assert_allclose(custom.getData() / 1.0, rate.getData(), rtol=0.01)
    assert not np.array_equal(custom.getData(), rate.getCountsTotal())  # really different tags


def test_start_stop_histogram_equals_histogram_bin_for_bin(make_tagger, vendor_style) -> None:
    pairs = PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=2e5, delay_ps=2500,
                             efficiency_a=0.5, efficiency_b=0.5, jitter_a_ps=40.0, jitter_b_ps=30.0)
    tagger = make_tagger("ultra", [pairs, PoissonSource(channel=2, rate_hz=2e5)])
    sync = TT.SynchronizedMeasurements(tagger)
    custom = vendor_style.StartStopHistogram(sync.getTagger(), click_channel=2, start_channel=1,
                                             binwidth=10, n_bins=1000)
    hist = TT.Histogram(sync.getTagger(), 2, 1, binwidth=10, n_bins=1000)
    sync.startFor(SECOND)
    assert sync.waitUntilFinished(60_000)
    data = custom.getData()
    assert data.sum() > 10_000 and 2400 <= custom.getIndex()[data.argmax()] <= 2600
    np.testing.assert_array_equal(data, hist.getData())


def test_clear_start_stop_hooks_and_registration(make_tagger, vendor_style) -> None:
    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e5), PoissonSource(channel=2, rate_hz=1e5)])
    custom = vendor_style.CountPerChannel(tagger, [1, 2])
    assert tagger.isChannelRegistered(1) and tagger.isChannelRegistered(2)
    custom.unregister_channel(2)
    assert not tagger.isChannelRegistered(2)
    run_for(custom, SECOND // 10)
    counts = custom.getData()
    assert counts[0] > 5000 and counts[1] == 0
    custom.clear()
    assert custom.getData().sum() == 0 and custom.getCaptureDuration() == 0
    custom.start()
    custom.stop()
    assert not custom.isRunning()
    assert custom.starts == custom.stops == 2  # finalize_init + startFor counted once, then start/stop
    with pytest.raises(ValueError):
        custom.register_channel(99)


def test_begin_and_end_times_tile_the_capture(make_tagger) -> None:
    class Spans(TT.CustomMeasurement):
        def __init__(self, tagger):
            super().__init__(tagger)
            self.spans: list[tuple[int, int, int, int]] = []
            self.register_channel(1)
            self.finalize_init()

        def process(self, incoming_tags, begin_time, end_time):
            times = incoming_tags["time"]
            lo, hi = (int(times.min()), int(times.max())) if times.size else (begin_time, begin_time)
            self.spans.append((begin_time, end_time, lo, hi))
            assert (incoming_tags["type"] == 0).all() and (incoming_tags["missed_events"] == 0).all()

    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e6)])
    spans = Spans(tagger)
    run_for(spans, SECOND // 5)
    assert sum(end - begin for begin, end, _, _ in spans.spans) == SECOND // 5
    for (_, end, _, _), (begin, _, _, _) in zip(spans.spans, spans.spans[1:], strict=False):
        assert begin == end
    for begin, end, lo, hi in spans.spans:
        assert begin <= lo and hi < end


def test_an_error_in_process_stops_the_measurement_and_is_reported(make_tagger, capsys) -> None:
    class Broken(TT.CustomMeasurement):
        def __init__(self, tagger):
            super().__init__(tagger)
            self.register_channel(1)
            self.finalize_init()

        def process(self, incoming_tags, begin_time, end_time):
            raise ZeroDivisionError("user bug")

    tagger = make_tagger("ultra", [PoissonSource(channel=1, rate_hz=1e5)])
    broken = Broken(tagger)
    broken.startFor(SECOND)
    with pytest.raises(RuntimeError, match="user bug"):
        broken.waitUntilFinished(60_000)
    assert "ZeroDivisionError" in capsys.readouterr().err
