"""``TimeTagStream``: a copy of the raw tag stream, handed out buffer by buffer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .custom import overflow_records
from .engine import Chunk
from .enums import TagType
from .iterators import IteratorBase
from .measurements import channel_list, positive

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase



def overflow_marks(chunk: Chunk, channels: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(times, channels, types, missed counts) of an overflow interval as the vendor streams it (the same marking
    a CustomMeasurement gets: OverflowBegin, MissedEvents per channel, OverflowEnd)."""
    records = overflow_records(chunk, channels)
    return records["time"], records["channel"], records["type"], records["missed_events"]


class TimeTagStreamBuffer:
    """The tags collected between two ``TimeTagStream.getData`` calls."""

    def __init__(self, timestamps: np.ndarray, channels: np.ndarray, t_start: int, t_get_data: int,
                 missed: int, event_types: np.ndarray | None = None, missed_events: np.ndarray | None = None):
        self._timestamps = timestamps.astype(np.int64)
        self._channels = channels.astype(np.int32)
        self._t_start = int(t_start)
        self._t_get_data = int(t_get_data)
        self._missed = int(missed)
        n = self._timestamps.size
        self._types = np.zeros(n, dtype=np.uint8) if event_types is None else event_types.astype(np.uint8)
        self._missed_events = (np.zeros(n, dtype=np.uint16) if missed_events is None
                               else missed_events.astype(np.uint16))

    # Properties on the class (not instance attributes), so reflection sees them as the vendor's.
    @property
    def size(self) -> int:
        """Number of tags in the buffer."""
        return int(self._timestamps.size)

    @property
    def hasOverflows(self) -> bool:
        """Whether tags were lost (buffer full, or an overflow interval of the device) since the previous getData."""
        return self._missed > 0 or bool((self._types != TagType.TimeTag).any())

    @property
    def tStart(self) -> int:
        """Tag time in ps at which this buffer started collecting."""
        return self._t_start

    @property
    def tGetData(self) -> int:
        """Tag time in ps up to which this buffer collected."""
        return self._t_get_data

    def getTimestamps(self) -> np.ndarray:
        """Timestamps in ps."""
        return self._timestamps.copy()

    def getChannels(self) -> np.ndarray:
        """Channel of each tag."""
        return self._channels.copy()

    def getEventTypes(self) -> np.ndarray:
        """Type of each tag (TagType): TimeTag, or OverflowBegin/MissedEvents/OverflowEnd around dropped tags."""
        return self._types.copy()

    def getOverflows(self) -> np.ndarray:
        """Overflow flag of each tag (deprecated by the vendor; see getEventTypes)."""
        return (self._types != TagType.TimeTag).astype(np.uint8)

    def getMissedEvents(self) -> np.ndarray:
        """Events missed on the tag's channel, for MissedEvents tags (at most 65535 per tag, as uint16)."""
        return self._missed_events.copy()


class TimeTagStream(IteratorBase):
    """Collects up to ``n_max_events`` tags of ``channels``; ``getData`` hands them over and starts a new buffer."""

    def __init__(self, tagger: TimeTaggerBase, n_max_events: int, channels: list[int]):
        self._n_max = positive("n_max_events", n_max_events)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]] = []
        self._count = 0
        self._missed = 0
        self._t_start = 0
        self._t_now = 0
        super().__init__(tagger, channel_list("TimeTagStream", channels))

    def _describe(self) -> dict[str, Any]:
        return {"n_max_events": self._n_max}

    def _on_clear(self) -> None:
        self._parts.clear()
        self._count = 0
        self._missed = 0

    def _on_chunk(self, chunk: Chunk) -> None:
        self._t_now = chunk.end_ps
        if chunk.missed is not None:
            self._overflow_marks(chunk)
            return
        room = self._n_max - self._count
        stamps, chans = chunk.merged(self._channels)
        if stamps.size > room:
            self._missed += stamps.size - room
            stamps, chans = stamps[:room], chans[:room]
        if stamps.size:
            self._parts.append((stamps, chans, None, None))
            self._count += stamps.size

    def _overflow_marks(self, chunk: Chunk) -> None:
        marks = overflow_marks(chunk, self._channels)
        self._parts.append(marks)
        self._count += marks[0].size

    def getCounts(self) -> int:
        """Tags stored since the last getData."""
        with self._lock:
            return int(self._count)

    def getData(self) -> TimeTagStreamBuffer:
        """Return the collected tags and start an empty buffer."""
        with self._lock:
            types = missed_events = None
            if self._parts:
                stamps = np.concatenate([p[0] for p in self._parts])
                chans = np.concatenate([p[1] for p in self._parts])
                if any(p[2] is not None for p in self._parts):
                    types = np.concatenate([p[2] if p[2] is not None else np.zeros(p[0].size, np.uint8)
                                            for p in self._parts])
                    missed_events = np.concatenate([p[3] if p[3] is not None else np.zeros(p[0].size, np.uint16)
                                                    for p in self._parts])
            else:
                stamps, chans = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32)
            buffer = TimeTagStreamBuffer(stamps, chans, self._t_start, self._t_now, self._missed, types,
                                         missed_events)
            self._parts = []
            self._count = 0
            self._missed = 0
            self._t_start = self._t_now
            return buffer
