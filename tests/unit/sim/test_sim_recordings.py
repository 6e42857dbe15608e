"""FileWriter -> FileReader: every recorded tag comes back unchanged, also across split files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from simutil import run_for

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.recording import MAGIC, RecordingFormatError, data_files, recording_files, recording_info
from taggerhub.sim.signals import PhotonPairSource, PoissonSource

SECOND = 10**12


def _record(tagger, path, channels, duration_ps, configure=None):
    """Record ``duration_ps`` with a FileWriter and, on exactly the same tags, a TimeTagStream."""
    sync = TT.SynchronizedMeasurements(tagger)
    writer = TT.FileWriter(sync.getTagger(), str(path), channels)
    stream = TT.TimeTagStream(sync.getTagger(), 10**8, channels)
    if configure is not None:
        configure(writer)
    sync.startFor(duration_ps)
    assert sync.waitUntilFinished(60_000)
    writer.stop()
    return writer, stream.getData()


def _read_all(names, block=77_777):
    reader = TT.FileReader(names)
    times, chans, types, missed = [], [], [], []
    while reader.hasData():
        buf = reader.getData(block)
        assert 0 < buf.size <= block
        times.append(buf.getTimestamps())
        chans.append(buf.getChannels())
        types.append(buf.getEventTypes())
        missed.append(buf.getMissedEvents())
    assert reader.getData(10).size == 0
    return reader, np.concatenate(times), np.concatenate(chans), np.concatenate(types), np.concatenate(missed)


@pytest.fixture
def busy_tagger(make_tagger):
    pairs = PhotonPairSource(channel_a=1, channel_b=2, pair_rate_hz=3e5, delay_ps=2500,
                             efficiency_a=0.5, efficiency_b=0.5, jitter_a_ps=40.0, jitter_b_ps=30.0)
    return make_tagger("ultra", [pairs, PoissonSource(channel=3, rate_hz=2e5), PoissonSource(channel=4, rate_hz=1e5)])


def test_round_trip_returns_every_tag(busy_tagger, tmp_path) -> None:
    busy_tagger.setTestSignal(5, True)
    writer, live = _record(busy_tagger, tmp_path / "run.ttbin", [1, 2, 3, -5], SECOND // 2)
    reader, times, chans, types, missed = _read_all(str(tmp_path / "run.ttbin"))
    assert live.size > 300_000
    assert writer.getTotalEvents() == live.size
    np.testing.assert_array_equal(times, live.getTimestamps())
    np.testing.assert_array_equal(chans, live.getChannels())
    assert set(np.unique(chans)) == {1, 2, 3, -5}  # channel 4 was not asked for
    assert not types.any() and not missed.any()
    assert reader.getChannelList() == [1, 2, 3, -5]
    assert reader.getConfiguration()["serial"] == busy_tagger.getSerial()
    assert reader.getConfiguration()["channels"]["5"]["test signal"] is True
    files = recording_files(tmp_path / "run.ttbin")
    assert [f.name for f in files] == ["run.ttbin", "run.1.ttbin"]
    assert writer.getTotalSize() == sum(f.stat().st_size for f in files)
    info = recording_info(tmp_path / "run.ttbin")
    assert info["events"] == live.size and info["end_ps"] - info["begin_ps"] == SECOND // 2


def test_round_trip_across_automatic_and_explicit_splits(busy_tagger, tmp_path) -> None:
    def small_files(writer):
        writer.setMaxFileSize(1_000_000)  # ~62 k tags a file

    writer, live = _record(busy_tagger, tmp_path / "split.ttbin", [1, 2, 3, 4], SECOND // 2, small_files)
    writer.split()  # an explicit split after the capture: one more (empty) data file
    writer.stop()
    parts = data_files(tmp_path / "split.ttbin")
    assert len(parts) >= 5
    sizes = [p.stat().st_size for p in parts[:-2]]
    assert all(s >= 1_000_000 for s in sizes) and all(s < 1_600_000 for s in sizes)
    _, times, chans, _, _ = _read_all(str(tmp_path / "split.ttbin"))
    np.testing.assert_array_equal(times, live.getTimestamps())
    np.testing.assert_array_equal(chans, live.getChannels())
    # The data files read on their own, and as a list, give the same tags in pieces.
    _, t2, c2, _, _ = _read_all([str(p) for p in parts], block=1_000_003)
    np.testing.assert_array_equal(t2, times)
    np.testing.assert_array_equal(c2, chans)
    _, t_first, _, _, _ = _read_all(str(parts[0]))
    np.testing.assert_array_equal(t_first, times[: t_first.size])
    assert 0 < t_first.size < times.size


def test_split_into_a_new_sequence_and_resume_after_stop(busy_tagger, tmp_path) -> None:
    writer = TT.FileWriter(busy_tagger, str(tmp_path / "a.ttbin"), [3])
    clock = TT.Countrate(busy_tagger, [4])  # lets virtual time pass while the writer runs

    def processed() -> int:
        with busy_tagger._engine._lock:  # not in the middle of a chunk that a writer may already have taken
            return busy_tagger._engine.processed_ps

    def advance(duration_ps: int) -> tuple[int, int]:
        before = processed()
        run_for(clock, duration_ps)
        return before, processed()

    advance(SECOND // 20)
    writer.split(str(tmp_path / "b.ttbin"))
    advance(SECOND // 20)
    writer.stop()
    paused = advance(SECOND // 20)
    writer.start()
    advance(SECOND // 20)
    writer.stop()
    _, ta, _, _, _ = _read_all(str(tmp_path / "a.ttbin"))
    _, tb, _, _, _ = _read_all(str(tmp_path / "b.ttbin"))
    assert ta.size > 5000 and tb.size > 10_000 and ta[-1] < tb[0]
    assert [f.name for f in recording_files(tmp_path / "b.ttbin")] == ["b.ttbin", "b.1.ttbin"]
    # Nothing was written while stopped, and writing resumed into the same file.
    assert not ((tb > paused[0] + SECOND // 1000) & (tb < paused[1] - SECOND // 1000)).any()
    assert (tb > paused[1]).sum() > 5000
    assert writer.getTotalEvents() == ta.size + tb.size
    _, both, _, _, _ = _read_all([str(tmp_path / "a.ttbin"), str(tmp_path / "b.ttbin")])
    np.testing.assert_array_equal(both, np.concatenate([ta, tb]))


def test_reader_rejects_files_of_another_format(tmp_path) -> None:
    vendor_like = tmp_path / "vendor.ttbin"
    vendor_like.write_bytes(b"\x00" * 64)
    with pytest.raises(RecordingFormatError, match="not a taggerhub recording"):
        TT.FileReader(str(vendor_like))
    with pytest.raises(FileNotFoundError):
        TT.FileReader(str(tmp_path / "missing.ttbin"))


def test_documented_layout_reads_with_plain_numpy(busy_tagger, tmp_path) -> None:
    """The layout in docs/recordings.md, read without taggerhub: preamble, JSON header, 16-byte records."""
    _, live = _record(busy_tagger, tmp_path / "doc.ttbin", [1, 2], SECOND // 10)
    raw = (tmp_path / "doc.1.ttbin").read_bytes()
    magic, version, header_size = struct.unpack_from("<8sII", raw)
    assert (magic, version) == (MAGIC, 1)
    header = json.loads(raw[16:16 + header_size])
    assert header["kind"] == "data" and header["part"] == 1 and header["events"] == live.size
    records = np.frombuffer(raw, offset=16 + header_size, dtype=np.dtype(
        [("type", "u1"), ("pad", "u1"), ("missed_events", "<u2"), ("channel", "<i4"), ("time", "<i8")]))
    np.testing.assert_array_equal(records["time"], live.getTimestamps())
    np.testing.assert_array_equal(records["channel"], live.getChannels())


def test_reader_takes_the_vendors_filename_keyword_too(busy_tagger, tmp_path) -> None:
    _record(busy_tagger, tmp_path / "one.ttbin", [1], SECOND // 100)
    by_keyword = TT.FileReader(filename=str(tmp_path / "one.ttbin")).getData(10**6).getTimestamps()
    by_list = TT.FileReader([str(tmp_path / "one.ttbin")]).getData(10**6).getTimestamps()
    assert by_keyword.size > 1000
    np.testing.assert_array_equal(by_keyword, by_list)
    for wrong in ({}, {"filenames": str(tmp_path / "one.ttbin"), "filename": str(tmp_path / "one.ttbin")}):
        with pytest.raises(TypeError, match=r"filenames .* or filename, exactly one"):
            TT.FileReader(**wrong)


def test_markers_come_back_between_the_records_they_were_written_between(busy_tagger, tmp_path) -> None:
    writer = TT.FileWriter(busy_tagger, str(tmp_path / "run.ttbin"), [1, 3])
    writer.stop()
    start = writer.getTotalEvents()  # it starts on creation: a chunk may have gone in before the stop
    writer.setMarker("before any tag")
    ends = []
    for label in ("first", "second", "third"):
        run_for(writer, SECOND // 20)
        writer.setMarker("ignored: a later marker at the same place wins")
        writer.setMarker(f"after {label} — µs")  # any text, not only ASCII
        ends.append(writer.getTotalEvents())
        if label == "second":
            writer.split()  # the third marker lands in run.2.ttbin
    assert 0 < ends[0] < ends[1] < ends[2]
    assert [f.name for f in recording_files(tmp_path / "run.ttbin")] == [
        "run.ttbin", "run.1.ttbin", "run.1.ttbin.markers", "run.2.ttbin", "run.2.ttbin.markers"]

    reader = TT.FileReader(str(tmp_path / "run.ttbin"))
    assert reader.getLastMarker() == ""  # nothing read yet
    reader.getData(start)
    assert reader.getLastMarker() == "before any tag"
    first = reader.getData(ends[0] - start - 1)
    assert reader.getLastMarker() == "before any tag"  # one record of the first run still unread
    last_of_first = reader.getData(1).getTimestamps()[0]
    assert reader.getLastMarker() == "after first — µs"
    second = reader.getData(ends[1] - ends[0])
    assert reader.getLastMarker() == "after second — µs"
    # The records around a marker are the last of one acquisition and the first of the next, in time order.
    assert second.getTimestamps()[0] > last_of_first and first.size == ends[0] - start - 1
    rest = reader.getData(10**7)
    assert rest.size == ends[2] - ends[1] and not reader.hasData()
    assert reader.getLastMarker() == "after third — µs"

    # Read in blocks that straddle the markers, as a vendor-style loop does: a marker is passed once the
    # block holding the record before it has been returned, never earlier.
    reader = TT.FileReader(str(tmp_path / "run.ttbin"))
    seen, read = [], 0
    while reader.hasData():
        read += reader.getData(7_919).size
        seen.append((read, reader.getLastMarker()))
    for read, marker in seen:
        passed = int(read >= start) + sum(read >= end for end in ends)
        assert marker == (["", "before any tag"] + [f"after {n} — µs" for n in ("first", "second", "third")])[passed]
    only_second_file = TT.FileReader(str(tmp_path / "run.2.ttbin"))  # one data file alone has its markers
    only_second_file.getData(10**7)
    assert only_second_file.getLastMarker() == "after third — µs"
    with pytest.raises(TypeError, match="marker must be a string"):
        writer.setMarker(42)
