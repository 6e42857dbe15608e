"""The tag stream to remote subscribers: a server-side CustomMeasurement per subscriber, a bounded queue.

Each subscriber (a client's ``TT.CustomMeasurement``) gets a :class:`StreamTap`, the backend's own
``CustomMeasurement`` whose ``process()`` only keeps the chunk's tags (a copy unless they are its own,
already the wire layout: 16 bytes a tag) into the subscriber's :class:`TagQueue`. The client pulls
batches of frames with ``hub_stream_read`` on a connection of its own. The queue holds at most
``limits.stream_queue_bytes``: a subscriber that falls behind loses whole frames, never the
engine's time or another client's, and when it catches up it receives one marker frame covering
the gap, as the vendor marks an overflow: ``OverflowBegin``, one ``MissedEvents`` record per
channel (its ``missed_events`` holds the count, at most 65535 per record), ``OverflowEnd``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections import deque
from types import ModuleType
from typing import Any

import numpy as np

from ..access.policy import Access
from ..backend.adapter import Adapter
from ..backend.kinds import ObjectKind
from ..errors import AccessDenied
from ..sim.custom import INCOMING_TAGS_DTYPE, chunk_records, overflow_marker
from ..sim.enums import TagType
from .callpath import CallPath
from .sessions import Session

log = logging.getLogger("taggerhub.server")
TAG_BYTES = INCOMING_TAGS_DTYPE.itemsize
READ_MAX_BYTES = 64 * 1024 * 1024  # the most one hub_stream_read returns
READ_MAX_WAIT_S = 1.0  # a read waits at most this long for tags: a worker is never held for long
ENDED_KEPT = 1024  # closed streams remembered, so their readers end without an error
_stream_numbers = itertools.count(1)


def lost_per_channel(tags: np.ndarray) -> dict[int, int]:
    """Tags per channel in a dropped frame; a frame of the device's own overflow marking counts what it marks."""
    if not tags.size:
        return {}
    channel, kinds = tags["channel"], tags["type"]
    low = int(channel.min())
    if kinds.any():
        weights = np.where(kinds == TagType.TimeTag, 1,
                           np.where(kinds == TagType.MissedEvents, tags["missed_events"], 0))
        counts = np.bincount(channel - low, weights=weights).astype(np.int64)
    else:
        counts = np.bincount(channel - low)  # linear, where np.unique would sort the whole frame
    return {low + int(i): int(counts[i]) for i in np.flatnonzero(counts)}


class UnmergedChunk:
    """A simulator chunk's tags of a subscriber's channels, merged into wire records only when a reader takes them.

    The merge into time order is most of what a subscriber costs the simulator; done here it runs on the
    reader's thread, so a subscriber does not slow the engine (the device) down. Subscribers on the same
    channels share one merge per chunk (the chunk's cache, the same one local CustomMeasurements use).
    """

    def __init__(self, chunk: Any, channels: list[int]):
        self.chunk = chunk
        self.channels = channels
        self.tags = sum(chunk.tags[c].size for c in channels if c in chunk.tags)
        self.size = self.tags * TAG_BYTES  # bytes on the wire, as the queue counts them

    def lost(self) -> dict[int, int]:
        return {c: int(self.chunk.tags[c].size) for c in self.channels if c in self.chunk.tags}

    def records(self) -> np.ndarray:
        key = ("incoming_tags", tuple(self.channels))
        # One merge per chunk fills its cache (the other readers wait, then reuse it); other chunks merge meanwhile.
        with self.chunk.cache.setdefault("merging", threading.Lock()):
            records = self.chunk.cache.get(key)
            if records is None:
                records = self.chunk.cache[key] = chunk_records(self.chunk, self.channels)
        return records.view(np.uint8)


class TagQueue:
    """One subscriber's frames, bounded in bytes; what does not fit is dropped, counted and marked."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._frames: deque[tuple[Any, int, int]] = deque()  # raw records as bytes (uint8), or an UnmergedChunk
        self._bytes = 0
        self._ready = threading.Condition()
        self._gap: list[Any] | None = None  # [begin, end, {channel: missed}] while the subscriber is behind
        self.reads = 0  # batches taken; a client waits for a batch taken after its request
        self.tags_in = 0
        self.tags_sent = 0
        self.tags_lost = 0
        self.frames_lost = 0
        self.peak_bytes = 0  # the most it ever held: never above max_bytes

    def put(self, tags: np.ndarray, begin_ps: int, end_ps: int) -> None:
        """Called on the engine thread: queue the chunk's records, or drop them if the subscriber is behind."""
        # A chunk array the backend made for this call alone (the simulator's) is kept as it is;
        # a view into the backend's buffer (the vendor's) is copied: it is reused after process().
        owned = tags.flags.owndata and tags.flags.c_contiguous
        if not self._offer(lambda: (tags if owned else tags.copy()).view(np.uint8), tags.nbytes, tags.size,
                           begin_ps, end_ps):
            self._count_lost(lost_per_channel(tags))  # outside the lock: the reader is not held up

    def put_unmerged(self, frame: UnmergedChunk, begin_ps: int, end_ps: int) -> None:
        """Called on the engine thread: queue a simulator chunk unmerged (the reader's thread merges it)."""
        if not self._offer(lambda: frame, frame.size, frame.tags, begin_ps, end_ps):
            self._count_lost(frame.lost())

    def _offer(self, frame: Any, size: int, tags: int, begin_ps: int, end_ps: int) -> bool:
        with self._ready:
            self.tags_in += tags
            if self._gap is None and self._bytes + size <= self.max_bytes:
                self._frames.append((frame(), begin_ps, end_ps))
                self._bytes += size
                self.peak_bytes = max(self.peak_bytes, self._bytes)
                self._ready.notify()
                return True
            if self._gap is None:
                self._gap = [begin_ps, end_ps, {}]
            self._gap[1] = end_ps
            self.frames_lost += 1
            return False

    def _count_lost(self, lost: dict[int, int]) -> None:
        with self._ready:
            self.tags_lost += sum(lost.values())
            if self._gap is not None:
                missed = self._gap[2]
                for channel, count in lost.items():
                    missed[channel] = missed.get(channel, 0) + count

    def clear(self) -> int:
        """Forget queued frames and any gap (the subscriber's clear()); return the batches taken before it."""
        with self._ready:
            self._frames.clear()
            self._bytes = 0
            self._gap = None
            return self.reads

    def wait(self, wait_s: float) -> None:
        """Wait up to ``wait_s`` for something to take."""
        with self._ready:
            if not self._frames and self._gap is None:
                self._ready.wait(wait_s)

    def take(self, max_bytes: int, wait_s: float = 0.0) -> tuple[list[tuple[np.ndarray, int, int]], int, int]:
        """Frames up to ``max_bytes`` (at least one), waiting up to ``wait_s``; then frames left, read number.

        The gap marker follows the frames queued before the gap, once they are all taken.
        """
        with self._ready:
            if wait_s > 0:
                self.wait(wait_s)  # the condition's lock is reentrant
            batch: list[tuple[np.ndarray, int, int]] = []
            size = 0
            while self._frames and (not batch or size + self._frames[0][0].size <= max_bytes):
                frame = self._frames.popleft()
                batch.append(frame)
                size += frame[0].size
            self._bytes -= size
            if not self._frames and self._gap is not None:
                begin, end, missed = self._gap
                batch.append((overflow_marker(begin, end, missed).view(np.uint8), begin, end))
                self._gap = None
            self.tags_sent += sum(data.size for data, _, _ in batch) // TAG_BYTES
            self.reads += 1
            return batch, len(self._frames) + (self._gap is not None), self.reads

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()


@functools.cache
def tap_class(backend: ModuleType) -> type:
    """The backend's CustomMeasurement subclass that feeds a :class:`TagQueue` (made once per backend)."""
    base = backend.CustomMeasurement

    class StreamTap(base):  # type: ignore[misc, valid-type]
        """Copies each chunk of its channels' tags into its subscriber's queue."""

        _shares_incoming_tags = True  # it only queues them: taps on the same channels share one merged array

        def __init__(self, tagger: Any, channels: list[int], queue: TagQueue):
            base.__init__(self, tagger)
            self.queue = queue
            for channel in channels:
                self.register_channel(channel)
            self.finalize_init()

        def process(self, incoming_tags: np.ndarray, begin_time: int, end_time: int) -> None:
            self.queue.put(incoming_tags, begin_time, end_time)

    if hasattr(base, "_on_chunk"):  # the simulator's: its chunks can be queued before they are merged

        def _on_chunk(self: Any, chunk: Any) -> None:
            if chunk.missed is not None:  # the device's overflow: marked records through process()
                base._on_chunk(self, chunk)
            else:
                self.queue.put_unmerged(UnmergedChunk(chunk, list(self._channels)), chunk.begin_ps, chunk.end_ps)

        StreamTap._on_chunk = _on_chunk
    return StreamTap


class Stream:
    """One subscriber: its tap on the device, its queue, and who owns it."""

    def __init__(self, session: Session, user: str, tap: Any, queue: TagQueue, channels: list[int]):
        self.id = f"t{next(_stream_numbers)}"
        self.session_id = session.id
        self.user = user
        self.tap = tap
        self.queue = queue
        self.channels = channels
        self.lock = threading.Lock()  # serialises control calls on the tap
        self.opened = time.monotonic()


class StreamCalls:
    """The ``hub_stream_*`` server calls, and the streams' totals for the exporter."""

    CONTROL = ("start", "startFor", "stop", "clear", "register_channel", "unregister_channel")

    def __init__(self, backend: ModuleType, calls: CallPath, queue_bytes: int):
        self.backend = backend
        self.calls = calls
        self.access: Access = calls.access
        self.queue_bytes = queue_bytes
        self._lock = threading.Lock()
        self._streams: dict[str, Stream] = {}
        self._closed = {"tags_sent": 0, "tags_lost": 0, "frames_lost": 0, "streams": 0}
        self._ended: dict[str, str] = {}  # recently closed stream -> its session: a last read ends quietly

    def _stream(self, session: Session, stream_id: str) -> Stream:
        with self._lock:
            stream = self._streams.get(str(stream_id))
        if stream is None:
            raise LookupError(f"no tag stream {stream_id!r} (closed, or its session ended)")
        if stream.session_id != session.id and not (
                self.access.enabled and self.access.role_now(session) == "admin"):
            raise AccessDenied(f"tag stream {stream_id!r} belongs to another client")
        return stream

    def open(self, session: Session, tagger: Any, channels: list[int]) -> dict[str, Any]:
        """Open a tag stream of ``channels`` on ``tagger`` for this client; it starts unless on a synchronized group.

        The client reads it with hub_stream_read; a client that falls behind gets the loss marked.
        """
        if not isinstance(channels, list | tuple) or not all(isinstance(c, int) for c in channels):
            raise TypeError(f"channels must be a list of channel numbers, got {channels!r}")
        device: Adapter = self.calls.tagger_for(tagger, session, (ObjectKind.library, "hub_stream_open", False))
        user = self.calls.quota_user(session)
        queue = TagQueue(self.queue_bytes)
        self.access.quotas.check_objects(user, self.access.role_now(session))
        tap = tap_class(self.backend)(device._obj, [int(c) for c in channels], queue)
        stream = Stream(session, user, tap, queue, [int(c) for c in channels])
        self.access.quotas.book(id(stream), user, self.access.role_now(session), 0)
        with self._lock:
            self._streams[stream.id] = stream
        self.access.audit.write("stream_open", user=session.user, session=session.id, stream=stream.id,
                                channels=stream.channels)
        log.info("tag stream opened", extra={"user": session.user, "session": session.id, "stream": stream.id,
                                             "channels": stream.channels})
        return {"id": stream.id, "running": bool(tap.isRunning()), "queue_bytes": self.queue_bytes}

    def read(self, session: Session, stream_id: str, max_bytes: int = READ_MAX_BYTES,
             wait_s: float = 0.2) -> dict[str, Any]:
        """Take the stream's queued tags: ``tags`` (raw INCOMING_TAGS_DTYPE records), ``frames`` [[begin, end, n]].

        Also ``running``, ``pending`` (frames still queued), ``read`` (this batch's number), ``capture_ps``;
        ``closed`` once the stream was closed (its last batch).
        Waits up to ``wait_s`` (at most 1 s) when nothing is queued.
        """
        with self._lock:
            ended = self._ended.get(str(stream_id)) == session.id
        if ended:  # closed while the client's reader waited: a last, empty batch, not an error
            return {"tags": np.zeros(0, dtype=np.uint8), "frames": [], "running": False, "pending": 0, "read": 0,
                    "capture_ps": 0, "closed": True}
        stream = self._stream(session, stream_id)
        wait = min(max(float(wait_s), 0.0), READ_MAX_WAIT_S)
        size = min(max(int(max_bytes), TAG_BYTES), READ_MAX_BYTES)
        stream.queue.wait(wait)
        # Whether it runs is read after the wait, just before the take, and not while a control call changes it
        # (stop, clear, startFor): a batch saying "stopped" then holds every tag of the run (the backend queues
        # a run's last chunk before it stops), and never tags of a run that began while this read waited.
        with stream.lock:
            running = bool(stream.tap.isRunning())
            batch, pending, number = stream.queue.take(size)
        # Unmerged simulator chunks are merged here, on this reader's thread, not on the engine's.
        arrays = [frame.records() if isinstance(frame, UnmergedChunk) else frame for frame, _, _ in batch]
        data = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint8)
        return {"tags": data, "frames": [[begin, end, frame.size // TAG_BYTES] for frame, begin, end in batch],
                "running": running, "pending": pending, "read": number,
                "capture_ps": int(stream.tap.getCaptureDuration())}

    def state(self, session: Session, stream_id: str) -> dict[str, Any]:
        """The stream's state: running, read (batches taken so far), capture_ps, tags sent and lost."""
        stream = self._stream(session, stream_id)
        q = stream.queue
        with q._ready:
            number = q.reads
        return {"running": bool(stream.tap.isRunning()), "read": number,
                "capture_ps": int(stream.tap.getCaptureDuration()), "tags_in": q.tags_in, "tags_sent": q.tags_sent,
                "tags_lost": q.tags_lost, "frames_lost": q.frames_lost, "peak_bytes": q.peak_bytes,
                "queue_bytes": q.max_bytes}

    def control(self, session: Session, stream_id: str, action: str, *args: Any) -> dict[str, Any]:
        """Run ``action`` (start, startFor, stop, clear, register_channel, unregister_channel) on the stream's tap.

        Returns the state; ``cleared_after``: for a clear, the number of the last batch taken before it.
        """
        stream = self._stream(session, stream_id)
        if action not in self.CONTROL:
            raise ValueError(f"unknown stream action {action!r} (one of: {', '.join(self.CONTROL)})")
        cleared_after = None
        with stream.lock:
            if action == "clear" or (action == "startFor" and (len(args) < 2 or args[1])):
                # Stopped first, so no chunk of the old run can enter the queue between its clear and the tap's.
                was_running = bool(stream.tap.isRunning())
                if was_running:
                    stream.tap.stop()
                cleared_after = stream.queue.clear()
                if action == "clear":
                    stream.tap.clear()
                    if was_running:
                        stream.tap.start()
                else:
                    stream.tap.startFor(*args)
            else:
                getattr(stream.tap, action)(*args)
            if action == "register_channel":
                stream.channels.append(int(args[0]))
        return {**self.state(session, stream_id), "cleared_after": cleared_after}

    def close(self, session: Session, stream_id: str) -> dict[str, int]:
        """Stop and free the stream; return what it sent and lost."""
        return self._close(self._stream(session, stream_id), session.user)

    def _close(self, stream: Stream, by: str) -> dict[str, int]:
        with self._lock:
            if self._streams.pop(stream.id, None) is None:
                return {"tags_sent": 0, "tags_lost": 0}
            self._ended[stream.id] = stream.session_id
            while len(self._ended) > ENDED_KEPT:
                del self._ended[next(iter(self._ended))]
        try:
            stream.tap.stop()
        except Exception as exc:
            log.info("tag stream tap did not stop cleanly", extra={"stream": stream.id, "error": str(exc)})
        stream.queue.wake()
        self.access.quotas.release(id(stream))
        q = stream.queue
        with self._lock:
            self._closed["tags_sent"] += q.tags_sent
            self._closed["tags_lost"] += q.tags_lost
            self._closed["frames_lost"] += q.frames_lost
            self._closed["streams"] += 1
        self.access.audit.write("stream_close", user=stream.user, session=stream.session_id, stream=stream.id,
                                by=by, tags_sent=q.tags_sent, tags_lost=q.tags_lost, frames_lost=q.frames_lost,
                                seconds=round(time.monotonic() - stream.opened, 3))
        return {"tags_sent": q.tags_sent, "tags_lost": q.tags_lost}

    def drop_session(self, session: Session) -> int:
        """The session ended: close its streams."""
        with self._lock:
            mine = [s for s in self._streams.values() if s.session_id == session.id]
        for stream in mine:
            self._close(stream, "disconnect")
        return len(mine)

    def close_all(self) -> int:
        """The server stops: close every stream."""
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            self._close(stream, "shutdown")
        return len(streams)

    def totals(self) -> dict[str, int]:
        """Counters for the exporter: subscribers now, tags sent and lost (monotonic, closed streams included)."""
        with self._lock:
            totals = dict(self._closed)
            streams = list(self._streams.values())
        totals["subscribers"] = len(streams)
        for stream in streams:
            totals["tags_sent"] += stream.queue.tags_sent
            totals["tags_lost"] += stream.queue.tags_lost
            totals["frames_lost"] += stream.queue.frames_lost
        return totals
