"""The stream's bounded queue: what a subscriber that falls behind receives, without a server around it."""

from __future__ import annotations

import numpy as np

from taggerhub.server.stream import TAG_BYTES, TagQueue
from taggerhub.sim.custom import INCOMING_TAGS_DTYPE, tags_array
from taggerhub.sim.enums import TagType


def chunk(begin: int, n: int, channels: tuple[int, ...]) -> np.ndarray:
    times = begin + np.arange(n, dtype=np.int64)
    return tags_array(times, np.resize(np.asarray(channels, dtype=np.int32), n))


def test_a_full_queue_drops_whole_chunks_and_marks_the_gap_after_what_was_queued() -> None:
    queue = TagQueue(max_bytes=3 * 1000 * TAG_BYTES)
    for i in range(3):
        queue.put(chunk(i * 1000, 1000, (1,)), i * 1000, (i + 1) * 1000)
    for i in range(3, 10):  # 7 chunks of 100 k tags on two channels: 350 k each, past one record's 65535
        queue.put(chunk(i * 10**6, 100_000, (1, 2)), i * 10**6, (i + 1) * 10**6)
    assert queue.peak_bytes <= queue.max_bytes and queue.tags_lost == 700_000 and queue.frames_lost == 7

    batch, pending, number = queue.take(10**9, 0)
    assert (pending, number) == (0, 1) and len(batch) == 4
    kept = [np.frombuffer(data, dtype=INCOMING_TAGS_DTYPE) for data, _, _ in batch[:3]]
    assert [k.size for k in kept] == [1000, 1000, 1000]
    marker = np.frombuffer(batch[3][0], dtype=INCOMING_TAGS_DTYPE)
    assert batch[3][1:] == (3 * 10**6, 10 * 10**6)  # the marker's begin/end span the gap
    assert marker["type"][0] == TagType.OverflowBegin and marker["time"][0] == 3 * 10**6
    assert marker["type"][-1] == TagType.OverflowEnd and marker["time"][-1] == 10 * 10**6
    missed = marker[marker["type"] == TagType.MissedEvents]
    assert missed["missed_events"].max() <= 65535
    for channel in (1, 2):
        assert int(missed["missed_events"][missed["channel"] == channel].sum()) == 350_000

    queue.put(chunk(11 * 10**6, 10, (3,)), 11 * 10**6, 12 * 10**6)  # caught up: queued again, unmarked
    batch, _, _ = queue.take(10**9, 0)
    assert len(batch) == 1 and np.frombuffer(batch[0][0], dtype=INCOMING_TAGS_DTYPE)["type"].max() == 0
    assert queue.tags_sent == 3000 + marker.size + 10


def test_a_view_into_the_backends_buffer_is_copied_an_own_array_kept() -> None:
    queue = TagQueue(max_bytes=10**6)
    buffer = chunk(0, 100, (1,))
    queue.put(buffer[:50], 0, 50)  # a view, as the vendor's incoming_tags: reused after process()
    buffer["channel"][:50] = 99
    own = chunk(100, 50, (2,))
    queue.put(own, 100, 150)
    batch, _, _ = queue.take(10**6, 0)
    first = np.frombuffer(batch[0][0], dtype=INCOMING_TAGS_DTYPE)
    assert set(first["channel"]) == {1}
    assert np.shares_memory(batch[1][0], own)


def test_take_waits_at_most_its_time_and_clear_forgets_the_gap() -> None:
    queue = TagQueue(max_bytes=100 * TAG_BYTES)
    batch, pending, _ = queue.take(10**6, 0.05)
    assert batch == [] and pending == 0
    queue.put(chunk(0, 200, (1,)), 0, 200)  # bigger than the queue: lost at once
    assert queue.clear() == 1
    batch, pending, _ = queue.take(10**6, 0)
    assert batch == [] and pending == 0
