"""Tag recordings: ``FileWriter`` and ``FileReader`` with the vendor's API, in an open, documented file format.

The vendor's ``.ttbin`` layout is not published, so recordings here use the
format documented in ``docs/recordings.md``: a 16-byte preamble (magic,
version, header size), a JSON header padded with spaces, then fixed-size
16-byte little-endian records laid out exactly as the vendor's
``CustomMeasurement.INCOMING_TAGS_DTYPE`` (type, missed_events, channel, time),
in time order. Any language can read it (``numpy.fromfile`` with an offset is
enough), a crash loses at most the record being written, and the records go
to ``CustomMeasurement.process`` and the replay engine without conversion.

As with the vendor, ``FileWriter(tagger, "run.ttbin", ...)`` writes a sequence
header ``run.ttbin`` (no tags) and the data files ``run.1.ttbin``,
``run.2.ttbin``, ...; ``FileReader("run.ttbin")`` reads the whole sequence and
``FileReader("run.2.ttbin")`` one file.

``FileWriter.setMarker(text)`` puts a marker between two records: it goes to
a JSON-lines side file ``run.1.ttbin.markers`` (one line per marker: the
number of records before it in that data file, the tag time and the text), so
the fixed-size records stay readable by every tool. ``FileReader`` passes a
marker once it has returned the records before it; ``getLastMarker()`` gives
the latest one passed, as the vendor's does.
"""

from __future__ import annotations

import datetime
import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np

from .custom import INCOMING_TAGS_DTYPE
from .engine import Chunk
from .handles import TaggerHandle as TimeTaggerBase  # the vendor's annotation, without importing the tagger
from .iterators import IteratorBase
from .measurements import channel_list
from .stream import TimeTagStreamBuffer

MAGIC = b"TTHUBREC"
FORMAT_VERSION = 1
PREAMBLE = struct.Struct("<8sII")  # magic, format version, size of the JSON header in bytes
RECORD_DTYPE = INCOMING_TAGS_DTYPE
RECORD_SIZE = RECORD_DTYPE.itemsize  # 16
HEADER_SLACK = 512  # room for the fields rewritten when a file is closed (events, end_ps, parts)
DEFAULT_MAX_FILE_SIZE = 1 << 30  # the vendor's default: ~1 GByte
DEFAULT_SUFFIX = ".ttbin"
MARKER_SUFFIX = ".markers"


class RecordingFormatError(ValueError):
    """The file is not a taggerhub recording (for example a vendor .ttbin)."""


def part_path(sequence: Path, index: int) -> Path:
    """Data file ``index`` (from 1) of a sequence: ``run.ttbin`` -> ``run.<index>.ttbin``."""
    return sequence.with_name(f"{sequence.stem}.{index}{sequence.suffix}")


def read_header(path: str | Path) -> tuple[dict[str, Any], int]:
    """Return a recording file's JSON header and the byte offset of its first record."""
    path = Path(path)
    with path.open("rb") as f:
        preamble = f.read(PREAMBLE.size)
        if len(preamble) < PREAMBLE.size or preamble[:8] != MAGIC:
            raise RecordingFormatError(
                f"{path} is not a taggerhub recording (no {MAGIC.decode()} magic); vendor .ttbin files "
                "can be read only with the vendor's own library")
        _, version, size = PREAMBLE.unpack(preamble)
        if version > FORMAT_VERSION:
            raise RecordingFormatError(f"{path} has recording format version {version}; this reader knows "
                                       f"up to {FORMAT_VERSION}")
        header = json.loads(f.read(size).decode("utf-8"))
    return header, PREAMBLE.size + size


def data_files(path: str | Path) -> list[Path]:
    """The data files a name stands for: every part of a sequence header, or the file itself."""
    path = Path(path)
    header, _ = read_header(path)
    if header.get("kind") != "sequence":
        return [path]
    parts: list[Path] = []
    count = header.get("parts")
    index = 1
    while (count is None or index <= count) and part_path(path, index).exists():
        parts.append(part_path(path, index))
        index += 1
    return parts


def marker_path(data_file: Path) -> Path:
    """The side file holding the markers of one data file: ``run.1.ttbin`` -> ``run.1.ttbin.markers``."""
    return data_file.with_name(data_file.name + MARKER_SUFFIX)


def read_markers(data_file: Path) -> list[tuple[int, str]]:
    """(records before the marker, text) of every marker of a data file, in the order written."""
    path = marker_path(data_file)
    if not path.exists():
        return []
    markers = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():  # a crash may leave a line cut short: it is the last one, and skipped
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            markers.append((int(entry["position"]), str(entry["marker"])))
    return markers


def recording_files(path: str | Path) -> list[Path]:
    """Every file belonging to a recording (sequence header first, marker side files after their data file)."""
    path = Path(path)
    parts = data_files(path)
    members = parts if parts == [path] else [path, *parts]
    return [f for part in members for f in (part, marker_path(part)) if f == part or f.exists()]


def record_count(path: Path, data_offset: int) -> int:
    """Complete records in a data file (a record cut short by a crash is ignored)."""
    return max(0, (path.stat().st_size - data_offset) // RECORD_SIZE)


def recording_info(path: str | Path) -> dict[str, Any]:
    """Summary of a recording for listings: files, bytes, events, channels, time span."""
    path = Path(path)
    header, _ = read_header(path)
    files = recording_files(path)
    events = 0
    begin: int | None = None
    end: int | None = None
    for part in data_files(path):
        part_header, offset = read_header(part)
        events += record_count(part, offset)
        if part_header.get("begin_ps") is not None:
            begin = part_header["begin_ps"] if begin is None else min(begin, part_header["begin_ps"])
        if part_header.get("end_ps") is not None:
            end = part_header["end_ps"] if end is None else max(end, part_header["end_ps"])
    return {
        "path": str(path), "files": [str(f) for f in files], "bytes": sum(f.stat().st_size for f in files),
        "events": events, "channels": header.get("channels", []), "begin_ps": begin, "end_ps": end,
        "created": header.get("created"), "serial": header.get("configuration", {}).get("serial", ""),
    }


class _DataFile:
    """One open file being written: header at the front, records appended."""

    def __init__(self, path: Path, header: dict[str, Any]):
        self.path = path
        self.header = dict(header)
        text = json.dumps(self.header, default=str).encode("utf-8")
        self.header_size = -(-(len(text) + HEADER_SLACK) // RECORD_SIZE) * RECORD_SIZE
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[bytes] = path.open("wb")
        self.file.write(PREAMBLE.pack(MAGIC, FORMAT_VERSION, self.header_size))
        self.file.write(text.ljust(self.header_size))
        self.size = PREAMBLE.size + self.header_size
        self.events = 0

    def append(self, records: np.ndarray) -> int:
        data = records.tobytes()
        self.file.write(data)
        self.file.flush()  # readers (a download, a replay) may follow a recording in progress
        self.size += len(data)
        self.events += records.size
        return len(data)

    def add_marker(self, marker: str, time_ps: int | None) -> int:
        """Append a marker after the records written so far; return the bytes written to the side file."""
        line = json.dumps({"position": self.events, "time_ps": time_ps, "marker": marker}) + "\n"
        data = line.encode("utf-8")
        with marker_path(self.path).open("ab") as f:
            f.write(data)
        return len(data)

    def update(self, **fields: Any) -> None:
        """Rewrite header fields in place (the header keeps its size)."""
        self.header.update(fields)
        text = json.dumps(self.header, default=str).encode("utf-8")
        if len(text) > self.header_size:
            raise RuntimeError(f"header of {self.path} outgrew its reserved {self.header_size} bytes")
        self.file.seek(PREAMBLE.size)
        self.file.write(text.ljust(self.header_size))
        self.file.seek(0, 2)
        self.file.flush()

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()


class FileWriter(IteratorBase):
    """Writes the tags of ``channels`` to a recording; starts on creation, as every measurement."""

    _starts_running = False  # started at the end of __init__, once the files are open

    def __init__(self, tagger: TimeTaggerBase, filename: str, channels: list[int]):
        self._max_file_size = DEFAULT_MAX_FILE_SIZE
        self._total_events = 0
        self._total_size = 0
        self._sequence: _DataFile | None = None
        self._part: _DataFile | None = None
        self._part_index = 0
        self._last_end: int | None = None
        self._channel_arg = channel_list("FileWriter", channels)
        super().__init__(tagger, self._channel_arg)
        with self._lock:
            self._open_sequence(filename)
        if getattr(tagger, "_autostart", True):
            self.start()

    # -- files ------------------------------------------------------------------------------
    def _base_header(self) -> dict[str, Any]:
        configuration = self._tagger.getConfiguration() if hasattr(self._tagger, "getConfiguration") else {}
        return {
            "format": "taggerhub-tags", "version": FORMAT_VERSION,
            "record": {"size": RECORD_SIZE, "fields": ["type:u1", "pad:u1", "missed_events:<u2",
                                                       "channel:<i4", "time:<i8"]},
            "channels": list(self._channels), "time_unit": "ps",
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "configuration": configuration,
        }

    def _open_sequence(self, filename: str) -> None:
        path = Path(filename)
        if not path.suffix:
            path = path.with_suffix(DEFAULT_SUFFIX)
        if not path.name:
            raise ValueError("FileWriter needs a file name")
        self._sequence = _DataFile(path, {**self._base_header(), "kind": "sequence", "parts": None,
                                          "events": 0, "begin_ps": None, "end_ps": None})
        self._total_size += self._sequence.size
        self._part_index = 0
        self._open_part()

    def _open_part(self) -> None:
        assert self._sequence is not None
        self._part_index += 1
        header = {key: value for key, value in self._sequence.header.items() if key != "parts"}
        header.update(kind="data", sequence=self._sequence.path.name, part=self._part_index, events=0,
                      begin_ps=self._last_end, end_ps=None)
        self._part = _DataFile(part_path(self._sequence.path, self._part_index), header)
        self._total_size += self._part.size

    def _close_part(self) -> None:
        if self._part is not None:
            self._part.update(events=self._part.events, end_ps=self._last_end)
            self._part.close()
            self._part = None

    def _close_sequence(self) -> None:
        self._close_part()
        if self._sequence is not None:
            self._sequence.update(parts=self._part_index, events=self._sequence_events(), end_ps=self._last_end)
            self._sequence.close()
            self._sequence = None

    def _sequence_events(self) -> int:
        assert self._sequence is not None
        return int(self._sequence.header.get("events", 0))

    def _checkpoint(self) -> None:
        """Bring the headers up to date, so the files read back completely while the writer lives on."""
        if self._part is not None:
            self._part.update(events=self._part.events, end_ps=self._last_end)
        if self._sequence is not None:
            self._sequence.update(parts=self._part_index, events=self._sequence_events(), end_ps=self._last_end)

    # -- engine side ------------------------------------------------------------------------
    def _on_chunk(self, chunk: Chunk) -> None:
        if self._part is None:
            return
        times, channels = chunk.merged(self._channels)
        if self._part.header.get("begin_ps") is None:
            self._part.update(begin_ps=chunk.begin_ps)
        if self._sequence is not None and self._sequence.header.get("begin_ps") is None:
            self._sequence.update(begin_ps=chunk.begin_ps)
        if times.size:
            records = np.zeros(times.size, dtype=RECORD_DTYPE)
            records["channel"] = channels
            records["time"] = times
            self._total_size += self._part.append(records)
            self._total_events += records.size
            if self._sequence is not None:
                self._sequence.header["events"] = self._sequence_events() + records.size
        self._last_end = chunk.end_ps
        if self._part.size >= self._max_file_size:
            self._close_part()
            self._open_part()

    def _on_clear(self) -> None:
        """Nothing to reset: what is on disk stays (the vendor's FileWriter keeps writing the same file)."""

    def _describe(self) -> dict[str, Any]:
        path = self._sequence.path if self._sequence is not None else None
        return {"filename": str(path) if path else None, "max_file_size": self._max_file_size}

    # -- vendor API -------------------------------------------------------------------------
    def split(self, new_filename: str = "") -> None:
        """Close the current data file and continue in the next one, or in a new sequence ``new_filename``."""
        with self._lock:
            if self._sequence is None:
                raise RuntimeError("FileWriter has been closed")
            if new_filename:
                self._close_sequence()
                self._open_sequence(new_filename)
            else:
                self._close_part()
                self._open_part()
                self._checkpoint()

    def setMaxFileSize(self, max_file_size: int) -> None:
        """Start a new data file once one grows beyond ``max_file_size`` bytes (it may exceed it by one chunk)."""
        max_file_size = int(max_file_size)
        if max_file_size <= 0:
            raise ValueError(f"max_file_size must be positive, got {max_file_size}")
        with self._lock:
            self._max_file_size = max_file_size

    def setMarker(self, marker: str) -> None:
        """Write ``marker`` at the current position of the recording; ``FileReader.getLastMarker`` reads it back."""
        if not isinstance(marker, str):
            raise TypeError(f"marker must be a string, got {type(marker).__name__}")
        with self._lock:
            if self._part is None:
                raise RuntimeError("FileWriter has been closed")
            self._total_size += self._part.add_marker(marker, self._last_end)

    def getMaxFileSize(self) -> int:
        """Return the size in bytes at which a new data file is started."""
        return self._max_file_size

    def getTotalEvents(self) -> int:
        """Return the number of tags written to all files."""
        with self._lock:
            return int(self._total_events)

    def getTotalSize(self) -> int:
        """Return the number of bytes written to all files, headers included."""
        with self._lock:
            return int(self._total_size)

    def stop(self) -> None:
        """Stop writing; the files are complete on disk (``start()`` appends to them again)."""
        super().stop()
        with self._lock:
            self._checkpoint()

    def _release(self) -> None:
        with self._lock:
            self._close_sequence()
        super()._release()


class RecordedBuffer(TimeTagStreamBuffer):
    """A ``TimeTagStreamBuffer`` that also carries each tag's type and missed-event count from the file."""

    def __init__(self, records: np.ndarray, t_start: int, t_get_data: int):
        super().__init__(records["time"], records["channel"], t_start, t_get_data,
                         int(np.count_nonzero(records["type"] != 0)))
        self._types = records["type"].astype(np.uint8)
        self._missed_events = records["missed_events"].astype(np.uint16)

    def getEventTypes(self) -> np.ndarray:
        """Type of each tag (TagType: TimeTag, Error, OverflowBegin, OverflowEnd, MissedEvents)."""
        return self._types.copy()

    def getOverflows(self) -> np.ndarray:
        """Whether each tag is not a plain time tag (deprecated by the vendor; see getEventTypes)."""
        return (self._types != 0).astype(np.uint8)

    def getMissedEvents(self) -> np.ndarray:
        """Events missed at each MissedEvents tag."""
        return self._missed_events.copy()


class RecordCursor:
    """Reads the records of a list of data files in order, block by block."""

    def __init__(self, files: Iterable[Path]):
        self.files = list(files)
        self._index = 0
        self._position = 0  # records already read from the current file
        self.headers = [read_header(f) for f in self.files]

    def where(self) -> tuple[int, int]:
        """(data file, records read from it): the position between records reached so far."""
        return self._index, self._position

    def remaining(self) -> int:
        """Records not yet read, over all files."""
        total = 0
        for i in range(self._index, len(self.files)):
            _, offset = self.headers[i]
            total += record_count(self.files[i], offset) - (self._position if i == self._index else 0)
        return total

    def read(self, n: int) -> np.ndarray:
        """Up to ``n`` next records (fewer only at the end of the last file)."""
        parts: list[np.ndarray] = []
        wanted = n
        while wanted > 0 and self._index < len(self.files):
            path = self.files[self._index]
            _, offset = self.headers[self._index]
            available = record_count(path, offset) - self._position
            if available <= 0:
                self._index += 1
                self._position = 0
                continue
            count = min(wanted, available)
            block = np.fromfile(path, dtype=RECORD_DTYPE, count=count, offset=offset + self._position * RECORD_SIZE)
            parts.append(block)
            self._position += block.size
            wanted -= block.size
        if not parts:
            return np.zeros(0, dtype=RECORD_DTYPE)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


FileNames = str | Path | list[str] | list[Path]


class FileReader:
    """Reads recordings written by ``FileWriter``, following the data files of a sequence."""

    def __init__(self, filenames: FileNames | None = None, filename: str | Path | None = None):
        if (filenames is None) == (filename is None):
            raise TypeError("FileReader takes filenames (one or a list) or filename, exactly one of them")
        names = [filename] if filename is not None else (
            [filenames] if isinstance(filenames, str | Path) else list(filenames or []))
        if not names:
            raise ValueError("FileReader needs at least one file name")
        for name in names:
            if not Path(name).exists():
                raise FileNotFoundError(f"recording {name} does not exist")
        self._header, _ = read_header(names[0])
        self._cursor = RecordCursor([part for name in names for part in data_files(name)])
        self._markers = [(index, position, text) for index, part in enumerate(self._cursor.files)
                         for position, text in read_markers(part)]
        self._markers_passed = 0
        self._last_marker = ""
        begin = self._cursor.headers[0][0].get("begin_ps") if self._cursor.files else None
        self._t_last = int(begin or 0)

    def getData(self, n_events: int) -> RecordedBuffer:
        """Return the next ``n_events`` tags (fewer at the end of the data)."""
        n_events = int(n_events)
        if n_events < 0:
            raise ValueError(f"n_events must be >= 0, got {n_events}")
        records = self._cursor.read(n_events)
        self._pass_markers()
        t_start = self._t_last
        if records.size:
            self._t_last = int(records["time"][-1])
        return RecordedBuffer(records, t_start, self._t_last)

    def _pass_markers(self) -> None:
        """Take in the markers whose preceding records have all been returned."""
        reached = self._cursor.where()
        while self._markers_passed < len(self._markers):
            index, position, text = self._markers[self._markers_passed]
            if (index, position) > reached:
                break
            self._last_marker = text
            self._markers_passed += 1

    def hasData(self) -> bool:
        """Whether tags remain to be read."""
        return self._cursor.remaining() > 0

    def getConfiguration(self) -> dict[str, Any]:
        """The recording tagger's configuration when the file was created (a dict, as the vendor's Python API)."""
        return dict(self._header.get("configuration", {}))

    def getChannelList(self) -> list[int]:
        """The channels recorded."""
        return [int(c) for c in self._header.get("channels", [])]

    def getLastMarker(self) -> str:
        """The last marker passed by ``getData`` ("" before the first), as written by ``FileWriter.setMarker``."""
        return self._last_marker

    def __enter__(self) -> FileReader:
        return self

    def __exit__(self, *exc: object) -> bool:
        return False
