"""Vendor-style CustomMeasurements through a live server: process() runs in the client on streamed tags."""

from __future__ import annotations

import gc
import importlib
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from taggerhub import client
from taggerhub.sim.enums import TagType
from taggerhub.testing import ServerContext

SECOND = 10**12
SIM_TESTS = Path(__file__).resolve().parents[2] / "unit" / "sim"


def vendor_style(monkeypatch: pytest.MonkeyPatch, TT) -> ModuleType:
    """tests/unit/sim/vendor_style_custom.py, unchanged, with ``import TimeTagger`` giving the server's proxy."""
    monkeypatch.syspath_prepend(str(SIM_TESTS))
    monkeypatch.setitem(sys.modules, "TimeTagger", TT)
    monkeypatch.delitem(sys.modules, "vendor_style_custom", raising=False)
    return importlib.import_module("vendor_style_custom")


def test_counter_and_start_stop_histogram_equal_the_servers_measurements(monkeypatch) -> None:
    with ServerContext() as ctx:
        TT = ctx.proxy()
        custom = vendor_style(monkeypatch, TT)
        tagger = TT.createTimeTagger()
        sync = TT.SynchronizedMeasurements(tagger)
        counter = custom.CountPerChannel(sync.getTagger(), [1, 2])
        histogram = custom.StartStopHistogram(sync.getTagger(), click_channel=2, start_channel=1,
                                              binwidth=10, n_bins=1000)
        rate = TT.Countrate(sync.getTagger(), [1, 2])
        reference = TT.Histogram(sync.getTagger(), 2, 1, 10, 1000)
        assert not counter.isRunning()  # on a synchronized group: waits for it
        sync.startFor(SECOND)
        assert sync.waitUntilFinished(60_000)
        assert counter.waitUntilFinished(60_000) and histogram.waitUntilFinished(60_000)
        counts = counter.getData()
        assert counts.min() > 40_000
        assert counter.getCaptureDuration() == SECOND
        np.testing.assert_allclose(counts, rate.getData(), rtol=1e-12)  # same tags: equal, not "close"
        data = histogram.getData()
        assert data.sum() > 5_000 and 2400 <= histogram.getIndex()[data.argmax()] <= 2600
        np.testing.assert_array_equal(data, reference.getData())
        assert (counter.starts, counter.stops) == (1, 1)  # the group's start and end reached the hooks

        alone = custom.CountPerChannel(tagger, [1, 2])  # finalize_init starts it
        assert alone.isRunning() and alone.starts == 1
        alone.startFor(20 * SECOND)  # 20 s: two counts of a million differ by 0.14% (one sigma)
        assert alone.waitUntilFinished(60_000)
        assert alone.stops == 1 and not alone.isRunning()
        later = TT.Countrate(tagger, [1, 2])
        later.startFor(20 * SECOND)
        assert later.waitUntilFinished(60_000)
        np.testing.assert_allclose(alone.getData() / 20, later.getData(), rtol=0.01)  # other tags, same rates
        assert not np.array_equal(alone.getData(), counts)
        alone.clear()
        assert alone.getData().sum() == 0
        totals = TT.hub_status()["streams"]
        assert totals["subscribers"] == 3 and totals["tags_lost"] == 0 and totals["tags_sent"] > 4 * 40_000
        del counter, histogram, alone  # as with the vendor library: a dropped measurement is freed
        gc.collect()
        assert TT.hub_status()["streams"]["subscribers"] == 0


class Marks:
    """A stuck subscriber: process() blocks until released; keeps the records it got by type and the missed counts."""

    def __init__(self, TT, tagger):
        outer = self

        class Slow(TT.CustomMeasurement):
            def __init__(self):
                super().__init__(tagger)
                self.register_channel(1)
                self.register_channel(2)
                self.finalize_init()

            def process(self, incoming_tags, begin_time, end_time):
                kinds = incoming_tags["type"]
                outer.time_tags += int(np.count_nonzero(kinds == TagType.TimeTag))
                outer.missed += int(incoming_tags["missed_events"][kinds == TagType.MissedEvents].sum())
                outer.begins += int(np.count_nonzero(kinds == TagType.OverflowBegin))
                outer.ends += int(np.count_nonzero(kinds == TagType.OverflowEnd))
                outer.released.wait(60)

        self.released = threading.Event()  # stuck while the test needs it, then it catches up
        self.time_tags = self.missed = self.begins = self.ends = 0
        self.measurement = Slow()


def test_a_slow_subscriber_is_marked_and_bounded_while_a_fast_one_loses_nothing(monkeypatch) -> None:
    queue_bytes = 2 * 1024 * 1024  # 1.3 s of these tags: the fast subscriber's slack on a busy machine
    with ServerContext(env={"TAGGERHUB_SIMULATOR_CLOCK": "realtime",
                            "TAGGERHUB_LIMITS_STREAM_QUEUE_BYTES": str(queue_bytes)}) as ctx:
        TT = ctx.proxy()
        custom = vendor_style(monkeypatch, TT)
        tagger = TT.createTimeTagger()
        slow = Marks(TT, tagger)
        sync = TT.SynchronizedMeasurements(tagger)
        fast = custom.CountPerChannel(sync.getTagger(), [1, 2])
        rate = TT.Countrate(sync.getTagger(), [1, 2])
        started = time.monotonic()
        sync.startFor(3 * SECOND)
        assert sync.waitUntilFinished(30_000)
        wall = time.monotonic() - started
        slow.released.set()
        assert fast.waitUntilFinished(30_000)
        slow.measurement.stop()
        state = TT.hub_stream_state(slow.measurement._pump.stream_id)
        fast_state = TT.hub_stream_state(fast._pump.stream_id)

        # Had the engine waited for the stuck subscriber, the run would not have ended at all.
        assert wall < 8.0, f"3 s of signal took {wall:.2f} s with a slow subscriber attached"
        assert fast_state["tags_lost"] == 0 and fast_state["frames_lost"] == 0, fast_state
        np.testing.assert_allclose(fast.getData(), rate.getData() * 3, rtol=1e-12)  # every tag

        assert state["tags_lost"] > 10_000, state
        assert slow.missed == state["tags_lost"]  # the client sees exactly what was lost ...
        assert slow.begins == slow.ends >= 1  # ... as the vendor's overflow marking
        assert slow.time_tags + slow.missed == state["tags_in"]
        assert state["peak_bytes"] <= queue_bytes  # bounded, whatever the subscriber does
        assert TT.hub_metrics()["streams"]["tags_lost"] >= state["tags_lost"]
        del fast, slow
        gc.collect()
        assert TT.hub_status()["streams"]["subscribers"] == 0


def test_streams_obey_roles_are_audited_and_freed(start_auth_server) -> None:
    server = start_auth_server()
    with client.createProxy(host="127.0.0.1", port=server.port, token=server.tokens["oscar"]) as TT:  # observer
        tagger = TT.createTimeTagger()

        class Count(TT.CustomMeasurement):
            def __init__(self):
                super().__init__(tagger)
                self.n = 0
                self.register_channel(1)
                self.finalize_init()

            def process(self, incoming_tags, begin_time, end_time):
                self.n += incoming_tags.size

        mine = Count()
        mine.startFor(SECOND // 10)
        assert mine.waitUntilFinished(30_000) and mine.n > 1_000
        stream_id = mine._pump.stream_id
        with client.createProxy(host="127.0.0.1", port=server.port, token=server.tokens["otto"]) as other:
            with pytest.raises(PermissionError, match="belongs to another client"):
                other.hub_stream_read(stream_id)
            with pytest.raises(PermissionError, match="belongs to another client"):
                other.hub_stream_control(stream_id, "stop")
        with pytest.raises(TypeError, match="channels must be a list"):
            TT.hub_stream_open(tagger, "1")
        with pytest.raises(ValueError, match="99"):
            TT.hub_stream_open(tagger, [1, 99])
        del mine
        gc.collect()  # the measurement's finalizer closes its stream
        deadline = time.monotonic() + 10
        while TT.hub_status()["streams"]["subscribers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert TT.hub_status()["streams"]["subscribers"] == 0
        assert TT.hub_stream_read(stream_id)["closed"]  # a reader still waiting ends quietly
        with pytest.raises(LookupError, match="no tag stream"):
            TT.hub_stream_state(stream_id)
    events = server.audit()
    opened = [e for e in events if e["event"] == "stream_open"]
    closed = [e for e in events if e["event"] == "stream_close"]
    assert [(e["user"], e["channels"]) for e in opened] == [("oscar", [1])]
    assert closed and closed[0]["stream"] == stream_id and closed[0]["tags_sent"] > 1_000


CLIENT = """
import sys, time
from taggerhub import client
TT = client.createProxy(host="127.0.0.1", port=int(sys.argv[1]), token=sys.argv[2])

class Count(TT.CustomMeasurement):
    def __init__(self, tagger):
        super().__init__(tagger)
        self.n = 0
        self.register_channel(1)
        self.finalize_init()

    def process(self, incoming_tags, begin_time, end_time):
        self.n += incoming_tags.size

counter = Count(TT.createTimeTagger())
while counter.n < 1000:
    time.sleep(0.05)
print("streaming", flush=True)
time.sleep(60)
"""


def test_a_killed_client_s_stream_is_closed_and_audited(start_auth_server) -> None:
    import subprocess

    server = start_auth_server()
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, str(server.port), server.tokens["oscar"]],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "streaming"
        admin = client.createProxy(host="127.0.0.1", port=server.port, token=server.tokens["ada"])
        assert admin.hub_status()["streams"]["subscribers"] == 1
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while admin.hub_status()["streams"]["subscribers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert admin.hub_status()["streams"]["subscribers"] == 0
    finally:
        proc.kill()
        proc.wait(10)
    closed = [e for e in server.audit() if e["event"] == "stream_close"]
    assert [(e["user"], e["by"]) for e in closed] == [("oscar", "disconnect")] and closed[0]["tags_sent"] >= 1000


def test_tag_stream_iterates_over_every_tag_of_a_synchronized_run() -> None:
    with ServerContext() as ctx:
        TT = ctx.proxy()
        tagger = TT.createTimeTagger()
        sync = TT.SynchronizedMeasurements(tagger)
        rate = TT.Countrate(sync.getTagger(), [1, 2])
        with client.TagStream(TT, sync.getTagger(), [1, 2]) as stream:
            sync.startFor(SECOND)
            chunks = list(stream)
            assert stream.state()["tags_lost"] == 0
        tags = np.concatenate([tags for tags, _, _ in chunks])
        assert np.all(np.diff(tags["time"]) >= 0) and set(np.unique(tags["channel"])) == {1, 2}
        assert sum(end - begin for _, begin, end in chunks) == SECOND  # the chunks tile the capture
        counts = [np.count_nonzero(tags["channel"] == c) for c in (1, 2)]
        np.testing.assert_array_equal(counts, rate.getData())
        assert TT.hub_status()["streams"]["subscribers"] == 0


def test_a_device_overflow_reaches_a_remote_subscriber_as_the_vendors_marking(tmp_path) -> None:
    """A lab far faster than the engine generates on this machine: the device overflows (getOverflows), the
    remote process() gets OverflowBegin / MissedEvents / OverflowEnd, and delivered + missed is the lab's rate."""
    rate_hz = 75e6
    lab = tmp_path / "fast.toml"
    lab.write_text('[[device]]\nserial = "FASTLAB"\nmodel = "Time Tagger X"\n[[device.source]]\n'
                   f'kind = "poisson"\nchannel = 1\nrate_hz = {rate_hz}\n')
    with ServerContext(env={"TAGGERHUB_SIMULATOR_CLOCK": "realtime",
                            "TAGGERHUB_SIMULATOR_CONFIG_FILE": str(lab)}) as ctx:
        TT = ctx.proxy()
        tagger = TT.createTimeTagger()
        marks = Marks(TT, tagger)
        marks.released.set()  # not stuck: it only records what arrives
        time.sleep(4)
        marks.measurement.stop()
        capture_s = marks.measurement.getCaptureDuration() / SECOND
        assert tagger.getOverflows() > 0
        assert marks.begins == marks.ends >= 1, (marks.begins, marks.ends)
        assert marks.missed > marks.time_tags / 10, (marks.missed, marks.time_tags)
        np.testing.assert_allclose(marks.time_tags + marks.missed, rate_hz * capture_s, rtol=0.15)


def test_startFor_right_after_creation_waits_for_every_tag_of_the_run(monkeypatch) -> None:
    """The vendor's examples call startFor(); waitUntilFinished(); getData() right after creating the measurement
    (which finalize_init started). A read that waited across the restart must not report the new run stopped:
    that ended waitUntilFinished with part of the tags (1840 of 4000, found running the examples through a server).
    """
    with ServerContext() as ctx:  # the virtual clock: the engine races the restart, as a busy device does
        TT = ctx.proxy()
        custom = vendor_style(monkeypatch, TT)
        tagger = TT.createTimeTagger()
        tagger.setTestSignal([1, 2], True)
        tagger.setEventDivider(1, 100)  # 8 kHz and 800 kHz
        for _ in range(5):  # bounded: the race lost most of the time
            counter = custom.CountPerChannel(tagger, [1, 2])
            counter.startFor(SECOND // 2)
            assert counter.waitUntilFinished(60_000)
            np.testing.assert_allclose(counter.getData(), [4_000, 400_000], atol=1)
            assert counter.getCaptureDuration() == SECOND // 2
            counter.stop()
