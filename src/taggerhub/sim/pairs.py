"""Vectorised pair finding between two sorted timestamp arrays.

Every histogramming measurement (``Correlation``, ``Histogram``,
``TimeDifferences``) needs all pairs (start, stop) whose difference lies in a
window. :class:`PairWindow` finds them chunk by chunk with ``searchsorted``
and ``repeat``, keeping only the tails of both arrays that can still pair with
tags of later chunks.
"""

from __future__ import annotations

import numpy as np

EMPTY = np.empty(0, dtype=np.int64)


def pairs_in_window(starts: np.ndarray, stops: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (start index, stop - start) for every pair with ``lo <= stop - start < hi``."""
    if starts.size == 0 or stops.size == 0:
        return EMPTY, EMPTY
    first = np.searchsorted(starts, stops - hi, side="right")
    last = np.searchsorted(starts, stops - lo, side="right")
    counts = last - first
    total = int(counts.sum())
    if total == 0:
        return EMPTY, EMPTY
    if total == counts.size and counts.min() == 1:  # the common sparse case: one partner per stop
        start_idx = first
        return start_idx, stops - starts[start_idx]
    ends = np.cumsum(counts)
    start_idx = np.arange(total, dtype=np.int64) - np.repeat(ends - counts - first, counts)
    stop_rep = np.repeat(stops, counts)
    return start_idx, stop_rep - starts[start_idx]


class PairWindow:
    """All pairs (a, b) with ``lo <= b - a < hi`` over a stream of chunks, each pair once."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = int(lo), int(hi)
        self.tail_a = EMPTY
        self.tail_b = EMPTY
        self.tail_a_tag = EMPTY  # a per-start label kept alongside (e.g. a histogram index)

    def clear(self) -> None:
        self.tail_a = self.tail_b = self.tail_a_tag = EMPTY

    def feed(self, new_a: np.ndarray, new_b: np.ndarray, end_ps: int,
             tag_a: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (label of a, b - a) of the pairs completed by this chunk; label is the a-index if untagged."""
        all_a = np.concatenate([self.tail_a, new_a]) if self.tail_a.size else new_a
        labels = None
        if tag_a is not None:
            labels = np.concatenate([self.tail_a_tag, tag_a]) if self.tail_a_tag.size else tag_a
        idx_1, dt_1 = pairs_in_window(all_a, new_b, self.lo, self.hi)
        parts_idx, parts_dt = [idx_1], [dt_1]
        if self.tail_b.size and new_a.size:
            idx_2, dt_2 = pairs_in_window(new_a, self.tail_b, self.lo, self.hi)
            parts_idx.append(idx_2 + self.tail_a.size)
            parts_dt.append(dt_2)
        idx = np.concatenate(parts_idx) if len(parts_idx) > 1 else idx_1
        dt = np.concatenate(parts_dt) if len(parts_dt) > 1 else dt_1
        # Keep what can still pair with later tags: a > end - hi, b >= end + lo.
        keep_a = int(np.searchsorted(all_a, end_ps - self.hi, side="right"))
        self.tail_a = all_a[keep_a:]
        if labels is not None:
            self.tail_a_tag = labels[keep_a:]
        all_b = np.concatenate([self.tail_b, new_b]) if self.tail_b.size else new_b
        self.tail_b = all_b[int(np.searchsorted(all_b, end_ps + self.lo, side="left")):] if self.lo < 0 else EMPTY
        return (labels[idx] if labels is not None else idx), dt
