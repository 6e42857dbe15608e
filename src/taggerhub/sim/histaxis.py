"""The histogram index of ``TimeDifferences`` and of each dimension of ``TimeDifferencesND``."""

from __future__ import annotations

import numpy as np

from .engine import Chunk

WAITING_FOR_SYNC = -2
WAITING_FOR_NEXT = -1


class HistogramAxis:
    """One histogram index, stepped by a next channel and reset by a sync channel (the vendor's docstrings).

    Without a sync channel the index starts at 0, each next tag moves it on by one and after the last histogram
    it rolls over to 0. With one it waits for a sync (-2), then for a next tag (-1), which starts histogram 0;
    a next tag in the last histogram is a rollover and pauses the index (-2) until the next sync.
    """

    def __init__(self, next_channel: int, sync_channel: int | None, size: int):
        self.next, self.sync, self.size = next_channel, sync_channel, size
        self.clear()

    def clear(self) -> None:
        self.nexts_seen = 0  # next tags since clear
        self.nexts_at_sync: int | None = None  # nexts_seen at the latest sync (None: no sync yet)
        self.rollovers = 0

    def _index_from(self, count: np.ndarray, base: np.ndarray | None) -> np.ndarray:
        """Index after ``count`` next tags in all, ``base`` of them before the latest sync (None: no sync)."""
        if self.sync is None:
            return count % self.size
        if base is None:
            return np.full(count.shape, WAITING_FOR_SYNC, dtype=np.int64)
        since = count - base
        index = since - 1
        index[since > self.size] = WAITING_FOR_SYNC  # rolled over: paused until the next sync
        return index

    def index(self) -> int:
        """The index now (vendor ``getHistogramIndex`` per dimension)."""
        base = None if self.sync is None or self.nexts_at_sync is None else np.array([self.nexts_at_sync])
        return int(self._index_from(np.array([self.nexts_seen]), base)[0])

    def advance(self, chunk: Chunk, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index of each start, and the times of this chunk's rollovers; moves the axis to the chunk's end."""
        nexts = chunk.get(self.next)
        count_at_start = self.nexts_seen + np.searchsorted(nexts, starts, side="right")
        count_at_next = self.nexts_seen + np.arange(1, nexts.size + 1)
        if self.sync is None:
            index = self._index_from(count_at_start, None)
            rolled = nexts[count_at_next % self.size == 0]  # a next tag in the last histogram
        else:
            syncs = chunk.get(self.sync)
            base_at_sync = self.nexts_seen + np.searchsorted(nexts, syncs, side="left")  # syncs come first

            def base_at(times: np.ndarray) -> np.ndarray:
                which = np.searchsorted(syncs, times, side="right") - 1
                carried = -1 if self.nexts_at_sync is None else self.nexts_at_sync  # -1: no sync yet
                base = np.where(which >= 0, base_at_sync[np.maximum(which, 0)] if syncs.size else 0, carried)
                return base

            start_base, next_base = base_at(starts), base_at(nexts)
            index = self._index_from(count_at_start, start_base)
            index[start_base < 0] = WAITING_FOR_SYNC
            rolled = nexts[(next_base >= 0) & (count_at_next - next_base == self.size + 1)]
            if syncs.size:
                self.nexts_at_sync = int(base_at_sync[-1])
        self.nexts_seen += nexts.size
        return index, rolled
