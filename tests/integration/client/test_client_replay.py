"""TT.FileReader and TT.createTimeTaggerVirtual on the client: recordings of the server replayed locally."""

from __future__ import annotations

import gc
import importlib
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

import taggerhub.sim
from taggerhub import client
from taggerhub.access.users import UserStore
from taggerhub.sim import Correlation as SimCorrelation
from taggerhub.sim.recording import FileReader as SimFileReader
from taggerhub.sim.replay import TimeTaggerVirtual
from taggerhub.testing import ServerContext

SECOND = 10**12
SIM_TESTS = Path(__file__).resolve().parents[2] / "unit" / "sim"


@pytest.fixture
def recording_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A server with recordings on; the client's recordings cache in tmp_path/cache."""
    monkeypatch.setenv("TAGGERHUB_RECORDINGS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "recordings"
    with ServerContext(env={"TAGGERHUB_SERVER_RECORDINGS_DIR": str(root)}) as ctx:
        ctx.root = root  # type: ignore[attr-defined]
        yield ctx


def record(TT, name: str, duration_ps: int, stream_events: int = 2 * 10**6):
    """Record the default lab's photon pairs (1, 2) on the server; a TimeTagStream and a Correlation see them too."""
    tagger = TT.createTimeTagger()
    sync = TT.SynchronizedMeasurements(tagger)
    writer = TT.FileWriter(sync.getTagger(), name, [1, 2])
    stream = TT.TimeTagStream(sync.getTagger(), stream_events, [1, 2])
    corr = TT.Correlation(sync.getTagger(), 2, 1, binwidth=10, n_bins=2000)
    sync.startFor(duration_ps)
    assert sync.waitUntilFinished(60_000)
    writer.stop()
    return writer, stream.getData(), corr.getData()


def test_file_reader_gives_every_tag_of_a_server_recording(recording_server, tmp_path: Path) -> None:
    ctx = recording_server
    TT = ctx.proxy()
    writer, live, _ = record(TT, "day1/run", SECOND // 5)
    events = writer.getTotalEvents()
    assert events > 10_000 and live.size == events

    reader = TT.FileReader("day1/run.ttbin")  # by the name `taggerhub recordings list` gives
    assert isinstance(reader, SimFileReader) and reader.hasData()
    data = reader.getData(10**7)
    assert not reader.hasData()
    np.testing.assert_array_equal(data.getTimestamps(), live.getTimestamps())  # every tag, as it was live
    np.testing.assert_array_equal(data.getChannels(), live.getChannels())
    assert not data.getEventTypes().any() and not data.getMissedEvents().any()
    assert reader.getConfiguration()["serial"] == TT.createTimeTagger().getSerial()
    # The same as a local reading of the server's own file, and downloaded where the cache says.
    local = SimFileReader(str(ctx.root / "anonymous" / "day1" / "run.ttbin")).getData(10**7)
    np.testing.assert_array_equal(data.getTimestamps(), local.getTimestamps())
    cached = tmp_path / "cache" / f"127.0.0.1_{ctx.port}" / "anonymous" / "day1"
    assert sorted(p.name for p in cached.iterdir()) == ["run.1.ttbin", "run.ttbin"]
    stamp = (cached / "run.1.ttbin").stat().st_mtime_ns
    assert TT.FileReader("day1/run.ttbin").getData(10).size == 10
    assert (cached / "run.1.ttbin").stat().st_mtime_ns == stamp  # unchanged on the server: not fetched again
    # A local file is read as it is, without the server.
    again = TT.FileReader(str(cached / "run.ttbin")).getData(10**7)
    np.testing.assert_array_equal(again.getTimestamps(), live.getTimestamps())


def test_virtual_tagger_replays_a_server_recording_to_the_live_correlation(recording_server) -> None:
    TT = recording_server.proxy()
    _, _, live_corr = record(TT, "lab", SECOND // 2, stream_events=1)
    assert live_corr.max() > 200  # the default lab's photon-pair peak
    gc.collect()  # record()'s dropped measurements: released by the next call, not counted later
    on_server = TT.hub_metrics()["objects"].get("Correlation", 0)
    virtual = TT.createTimeTaggerVirtual()
    assert isinstance(virtual, TimeTaggerVirtual)
    corr = TT.Correlation(virtual, 2, 1, binwidth=10, n_bins=2000)  # runs here, on the replayed tags
    assert isinstance(corr, SimCorrelation)
    rate = TT.Countrate(virtual, [1, 2])
    virtual.setReplaySpeed(-1)
    ident = virtual.replay("lab.ttbin", 0, -1, True)
    assert virtual.waitForCompletion(ident, 60_000)
    np.testing.assert_array_equal(corr.getData(), live_corr)
    assert rate.getCaptureDuration() >= SECOND // 2
    assert TT.hub_metrics()["objects"].get("Correlation", 0) == on_server  # nothing of the replay on the server

    # Given at creation, the file waits for run(), as with the vendor's library; stop() empties the queue.
    later = TT.createTimeTaggerVirtual("lab.ttbin")
    again = TT.Correlation(later, 2, 1, binwidth=10, n_bins=2000)
    later.run()
    assert later.waitForCompletion(0, 60_000)
    np.testing.assert_array_equal(again.getData(), live_corr)
    later.replay("lab.ttbin")
    later.stop()
    assert later.waitForCompletion(0, 10_000)
    TT.freeTimeTagger(later)
    TT.freeTimeTagger(virtual)


def test_names_outside_the_folder_are_refused_by_the_server_and_unknown_ones_named(recording_server,
                                                                                   tmp_path: Path) -> None:
    TT = recording_server.proxy()
    record(TT, "mine", SECOND // 50, stream_events=1)
    for name in ("../escaped.ttbin", str(tmp_path / "nowhere.ttbin"), "a/../../escaped.ttbin"):
        with pytest.raises(ValueError, match=r"no absolute path, no '\.\.'"):
            TT.FileReader(name)
        with pytest.raises(ValueError, match=r"no absolute path, no '\.\.'"):
            TT.createTimeTaggerVirtual().replay(name)
    with pytest.raises(FileNotFoundError, match=r"no recording file 'other\.ttbin'"):
        TT.FileReader("other.ttbin")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("escaped*"))
    assert TT.FileReader("mine.ttbin").hasData()  # the server still serves


def lab_script(TT) -> dict[str, np.ndarray]:
    """A lab's script, run unchanged on the simulator and through a server: record, read back, replay."""
    tagger = TT.createTimeTagger()
    sync = TT.SynchronizedMeasurements(tagger)
    writer = TT.FileWriter(sync.getTagger(), "pairs.ttbin", [1, 2])
    stream = TT.TimeTagStream(sync.getTagger(), 2 * 10**6, [1, 2])
    live = TT.Correlation(sync.getTagger(), 2, 1, binwidth=10, n_bins=2000)
    sync.startFor(SECOND // 2)
    sync.waitUntilFinished()
    writer.stop()
    reader = TT.FileReader("pairs.ttbin")
    recorded = reader.getData(10**7)
    virtual = TT.createTimeTaggerVirtual()
    replayed = TT.Correlation(virtual, 2, 1, binwidth=10, n_bins=2000)
    virtual.setReplaySpeed(-1)
    assert virtual.waitForCompletion(virtual.replay("pairs.ttbin"))
    tags = stream.getData()
    result = {"live": live.getData(), "replayed": replayed.getData(), "stream": tags.getTimestamps(),
              "stream_channels": tags.getChannels(), "read": recorded.getTimestamps(),
              "read_channels": recorded.getChannels(), "events": np.array(writer.getTotalEvents())}
    TT.freeTimeTagger(virtual)
    TT.freeTimeTagger(tagger)
    return result


@pytest.mark.parametrize("where", ["simulator", "taggerhub serve"])
def test_the_issues_replay_checks_run_unchanged_locally_and_through_a_server(where, start_server, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the simulator's FileWriter writes here; the server's into the user's folder
    monkeypatch.setenv("TAGGERHUB_RECORDINGS_CACHE", str(tmp_path / "cache"))
    if where == "simulator":
        taggerhub.sim.configure(clock="virtual", seed=4321)
        try:
            found = lab_script(taggerhub.sim)
        finally:
            taggerhub.sim.configure()
        assert (tmp_path / "pairs.ttbin").is_file()
    else:
        server = start_server(env={"TAGGERHUB_SERVER_RECORDINGS_DIR": str(tmp_path / "recordings")})
        with client.createProxy(host="127.0.0.1", port=server.port) as TT:
            found = lab_script(TT)
        assert not (tmp_path / "pairs.ttbin").exists()  # recorded on the server, replayed from the cache
        assert (tmp_path / "recordings" / "anonymous" / "pairs.ttbin").is_file()
        assert next((tmp_path / "cache").rglob("pairs.1.ttbin")).stat().st_size > 0
    assert found["live"].max() > 200  # the photon-pair peak
    np.testing.assert_array_equal(found["replayed"], found["live"])  # record -> replay -> the live Correlation
    assert found["read"].size == found["events"] == found["stream"].size > 10_000
    np.testing.assert_array_equal(found["read"], found["stream"])  # FileWriter -> FileReader: every tag equal
    np.testing.assert_array_equal(found["read_channels"], found["stream_channels"])


def test_each_user_replays_only_their_own_recordings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGGERHUB_RECORDINGS_CACHE", str(tmp_path / "cache"))
    store = UserStore(tmp_path / "users.toml")
    tokens = {name: store.add(name, "operator") for name in ("otto", "olga")}
    env = {"TAGGERHUB_AUTH_ENABLED": "true", "TAGGERHUB_AUTH_USERS_FILE": str(tmp_path / "users.toml"),
           "TAGGERHUB_AUTH_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
           "TAGGERHUB_SERVER_RECORDINGS_DIR": str(tmp_path / "recordings")}
    with ServerContext(env=env) as ctx:
        otto, olga = (ctx.proxy(token=tokens[name]) for name in ("otto", "olga"))
        writer = otto.FileWriter(otto.createTimeTagger(), "run", [1, 2])
        writer.startFor(SECOND // 20)
        assert writer.waitUntilFinished(30_000)
        writer.stop()
        assert otto.FileReader("run.ttbin").getData(10**7).size == writer.getTotalEvents() > 0
        assert (tmp_path / "cache" / f"127.0.0.1_{ctx.port}" / "otto" / "run.ttbin").is_file()
        with pytest.raises(FileNotFoundError, match=r"no recording file 'run\.ttbin'"):
            olga.FileReader("run.ttbin")  # her folder has none
        with pytest.raises(ValueError, match=r"no absolute path, no '\.\.'"):
            olga.createTimeTaggerVirtual("../otto/run.ttbin")
        assert not (tmp_path / "cache" / f"127.0.0.1_{ctx.port}" / "olga").exists()


def test_vendor_custom_measurements_run_on_a_replay_like_the_built_in_ones(recording_server, monkeypatch) -> None:
    TT = recording_server.proxy()
    record(TT, "lab", SECOND // 2, stream_events=1)
    # tests/unit/sim/vendor_style_custom.py, unchanged, with `import TimeTagger` giving the server's proxy.
    monkeypatch.syspath_prepend(str(SIM_TESTS))
    monkeypatch.setitem(sys.modules, "TimeTagger", TT)
    monkeypatch.delitem(sys.modules, "vendor_style_custom", raising=False)
    custom = importlib.import_module("vendor_style_custom")
    virtual = TT.createTimeTaggerVirtual()
    counter = custom.CountPerChannel(virtual, [1, 2])
    histogram = custom.StartStopHistogram(virtual, click_channel=2, start_channel=1, binwidth=10, n_bins=1000)
    rate = TT.Countrate(virtual, [1, 2])
    reference = TT.Histogram(virtual, 2, 1, 10, 1000)
    streams_before = TT.hub_metrics()["streams"]["subscribers"]
    assert counter.isRunning() and counter.starts == 1  # finalize_init started it, on_start ran
    assert virtual.waitForCompletion(virtual.replay("lab.ttbin"), 60_000)
    counts = counter.getData()
    assert counts.min() > 5_000
    np.testing.assert_array_equal(counts, rate.getCountsTotal())  # the same replayed tags
    np.testing.assert_array_equal(histogram.getData(), reference.getData())
    assert histogram.getData().sum() > 1_000
    assert TT.hub_metrics()["streams"]["subscribers"] == streams_before == 0  # nothing streamed from the server
    counter.stop()
    assert counter.stops == 1 and not counter.isRunning()
    counter.clear()
    assert counter.getData().sum() == 0
    replica = weakref.ref(counter._replica)
    del counter, histogram
    gc.collect()
    assert replica() is None  # as with the vendor's library: a dropped measurement is freed, here its replica too
    TT.freeTimeTagger(virtual)


def test_markers_set_through_the_server_come_back_from_the_downloaded_recording(recording_server) -> None:
    TT = recording_server.proxy()
    tagger = TT.createTimeTagger()
    writer = TT.FileWriter(tagger, "marked", [1, 2])
    writer.stop()
    ends = [writer.getTotalEvents()]  # what it wrote before the stop (it starts on creation)
    for label in ("dark", "bright"):
        writer.setMarker(f"{label} starts")
        writer.startFor(SECOND // 20)
        assert writer.waitUntilFinished(60_000)
        ends.append(writer.getTotalEvents())
    writer.setMarker(marker="done")  # the vendor's parameter name as a keyword
    assert ends[1] - ends[0] > 1_000 and ends[2] - ends[1] > 1_000
    files = {row["name"]: [f for f, _ in row["files"]] for row in TT.hub_recordings()}
    assert files["marked.ttbin"] == ["marked.ttbin", "marked.1.ttbin", "marked.1.ttbin.markers"]

    reader = TT.FileReader("marked.ttbin")
    reader.getData(ends[0])
    assert reader.getLastMarker() == "dark starts"
    reader.getData(ends[1] - ends[0] - 1)
    assert reader.getLastMarker() == "dark starts"  # the dark run's last tag is still unread
    reader.getData(1)
    assert reader.getLastMarker() == "bright starts"
    assert reader.getData(10**7).size == ends[2] - ends[1] and reader.getLastMarker() == "done"
    with pytest.raises(Exception, match="marker must be a string"):
        writer.setMarker(3)
    assert tagger.getSerial()  # the server is still serving
