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
    idx, dt, _ = pairs_and_reach(starts, stops, lo, hi)
    return idx, dt


def pairs_and_reach(starts: np.ndarray, stops: np.ndarray, lo: int, hi: int,
                    after: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Like :func:`pairs_in_window`, plus the number of (start, stop) pairs with ``stop - start >= hi``.

    That count falls out of the search anyway; a histogram counting its wider bins by edges saves a search.
    ``after``, if given, is ``searchsorted(starts, stops - lo, side="right")``, found some faster way.
    """
    if starts.size == 0 or stops.size == 0:
        return EMPTY, EMPTY, 0
    if after is None:
        after = np.searchsorted(starts, stops - lo, side="right")  # first start beyond the window
    span = int(starts[-1] - starts[0])
    if span > 0 and starts.size * (hi - lo) < 2 * span:
        idx, dt = _sparse_pairs(starts, stops, after, hi)
        return idx, dt, int(after.sum()) - dt.size
    first = np.searchsorted(starts, stops - hi, side="right")
    last = after
    counts = last - first
    total = int(counts.sum())
    if total == 0:
        return EMPTY, EMPTY, int(first.sum())
    ends = np.cumsum(counts)
    start_idx = np.arange(total, dtype=np.int64) - np.repeat(ends - counts - first, counts)
    stop_rep = np.repeat(stops, counts)
    return start_idx, stop_rep - starts[start_idx], int(first.sum())


def _sparse_pairs(starts: np.ndarray, stops: np.ndarray, after: np.ndarray, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs when a window holds few starts on average: from the first start beyond it, walk back.

    Start ``starts[p - k]`` pairs with a stop while it is later than ``stop - hi``; each round keeps
    only the stops whose previous candidate paired, so the rounds shrink fast.
    """
    idx_parts, dt_parts = [], []
    active = np.flatnonzero(after > 0)
    candidate = after[active] - 1
    for _ in range(starts.size):  # bounded: every round moves each candidate one start back
        if active.size == 0:
            break
        dt = stops[active] - starts[candidate]
        ok = dt < hi
        if not ok.any():
            break
        idx_parts.append(candidate[ok])
        dt_parts.append(dt[ok])
        keep = ok & (candidate > 0)
        active, candidate = active[keep], candidate[keep] - 1
    if not idx_parts:
        return EMPTY, EMPTY
    if len(idx_parts) == 1:
        return idx_parts[0], dt_parts[0]
    return np.concatenate(idx_parts), np.concatenate(dt_parts)


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
