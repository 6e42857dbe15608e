"""The starts a histogram keeps, with a table that ranks many needles among them without a search.

A histogram counting its wide bins by edges needs, per click and edge, the number of starts at or before
``click - edge``. ``np.searchsorted`` costs 20-50 ns per needle (a branchy binary search over a haystack
that may not fit in cache). Here time is cut into cells of 2**shift ps, about CELLS_PER_TAG cells per
start, and a table holds, per cell, the position of its first start: a needle's rank is that position plus
the starts of its own cell at or before it, usually none or one, found by comparing with the starts that
follow. That is a few vectorised NumPy passes over the needles (about 5-7 ns per needle on the bench lab).

The table grows with the history, chunk by chunk (a chunk costs its own starts and cells, not the whole
history: an FCS window keeps a second of starts), and its memory is reused: fresh pages of a megabyte-sized
table cost more in page faults than filling it.
"""

from __future__ import annotations

import numpy as np

EMPTY = np.empty(0, dtype=np.int64)

BEYOND = np.iinfo(np.int64).max  # pads the starts: no needle is at or beyond it
# Cells per start (at least): fewer cost more comparisons, more a larger table. Two were 10-15 % faster than one
# for a window of a few microseconds; an FCS window at 5 MHz keeps 1 s of starts (more than LARGE_HISTORY), whose
# history and table take 146 MiB at one cell per start, 234 MiB at two, at equal speed.
CELLS_PER_TAG = 2
LARGE_HISTORY = 1 << 20  # starts; beyond, one cell per start
BLOCK = 1 << 16  # needles ranked per NumPy call (scratch: three int64 arrays of 512 KiB)
ROUNDS = 8  # comparisons at most per needle within its cell (on fewer needles each); the rest are searched


def _exclusive_cumsum(counts: np.ndarray, offset: int, out: np.ndarray) -> None:
    """out[i] = offset + sum(counts[:i])."""
    out[0] = offset
    np.cumsum(counts[:-1], out=out[1:])
    out[1:] += offset


def _ideal_shift(span_ps: int, starts: int) -> int:
    """The largest cell (a power of two ps) with at least CELLS_PER_TAG cells per start over span_ps (one for
    a large history)."""
    per_cell = span_ps // ((CELLS_PER_TAG if starts < LARGE_HISTORY else 1) * max(starts, 1))
    return max(int(per_cell).bit_length() - 1, 0)


class RankedHistory:
    """Sorted starts, appended chunk by chunk and dropped from the front, ranked by a table over cells.

    Times are kept relative to ``origin`` (a multiple of the cell width), and so are the needles: pass
    ``values - origin``. A needle must lie at or after the last drop boundary and before the last end.
    """

    def __init__(self) -> None:
        self._scratch = np.empty((3, 0), dtype=np.int64)  # per needle: relative needle, cell, first position
        self._hits = np.empty(0, dtype=bool)
        self.clear()

    def clear(self) -> None:
        self._shift = -1  # not chosen yet
        self.origin = 0
        self._times = np.full(ROUNDS, BEYOND, dtype=np.int64)  # starts - origin at [lo, hi), then ROUNDS BEYOND
        self._lo = self._hi = 0
        self._before = EMPTY  # per cell c in [c_lo, c_hi): position of the first start at or after the cell
        self._c_lo = self._c_hi = 0

    @property
    def times(self) -> np.ndarray:
        """The starts kept, relative to ``origin``."""
        return self._times[self._lo:self._hi]

    def extend(self, starts: np.ndarray, begin_ps: int, end_ps: int, keep_from_ps: int) -> None:
        """Append a chunk's starts (none before the previous chunk's end) and cover the cells up to end_ps.

        The coming needles are at or after keep_from_ps: after a pause longer than that (a measurement
        stopped and started again), nothing kept can pair, and no cells are made across the pause.
        """
        if self._shift >= 0 and self.origin + (self._c_hi << self._shift) <= keep_from_ps:
            self.clear()
        if self._shift < 0:
            self._rebuild(starts, begin_ps, end_ps, _ideal_shift(end_ps - begin_ps, starts.size))
            return
        n_cells = ((end_ps - 1 - self.origin) >> self._shift) + 1
        if self._hi + starts.size + ROUNDS > self._times.size or n_cells > self._before.size:
            self._compact(starts, end_ps)
            return
        relative = self._times[self._hi:self._hi + starts.size]
        np.subtract(starts, self.origin, out=relative)
        self._times[self._hi + starts.size:self._hi + starts.size + ROUNDS] = BEYOND
        cells = relative >> self._shift
        covered = int(np.searchsorted(cells, self._c_hi))  # new starts in cells that already had an entry
        if n_cells > self._c_hi:
            counts = np.bincount(cells[covered:] - self._c_hi, minlength=n_cells - self._c_hi)
            _exclusive_cumsum(counts, self._hi + covered, self._before[self._c_hi:n_cells])
            self._c_hi = n_cells
        self._hi += starts.size

    def drop_before(self, boundary_ps: int) -> None:
        """Forget the cells wholly before boundary_ps and their starts (a few older starts may stay)."""
        cell = min((boundary_ps - self.origin) >> self._shift, self._c_hi - 1)
        if cell > self._c_lo:
            self._c_lo = cell
            self._lo = int(self._before[cell])

    def _compact(self, starts: np.ndarray, end_ps: int) -> None:
        """Move the kept starts and cells to the front of their buffers (or to larger ones), then append."""
        kept = self._times[self._lo:self._hi] + self.origin
        boundary = self.origin + (self._c_lo << self._shift)
        shift = _ideal_shift(end_ps - boundary, kept.size + starts.size)
        large = kept.size + starts.size >= LARGE_HISTORY and shift > self._shift  # grown large: coarser cells
        if abs(shift - self._shift) > 1 or large:  # the rate changed: cells of another width
            self._rebuild(np.concatenate([kept, starts]), boundary, end_ps, shift)
            return
        self._rebuild(kept, boundary, boundary + ((self._c_hi - self._c_lo) << self._shift), self._shift,
                      room=(kept.size + starts.size, ((end_ps - boundary) >> self._shift) + 1))
        self.extend(starts, boundary, end_ps, boundary)

    def _rebuild(self, starts: np.ndarray, begin_ps: int, end_ps: int, shift: int,
                 room: tuple[int, int] = (0, 0)) -> None:
        """Index ``starts`` (absolute, none before begin_ps) over cells from begin_ps to end_ps."""
        self._shift = shift
        self.origin = (begin_ps >> shift) << shift
        n_cells = ((end_ps - 1 - self.origin) >> shift) + 1
        self._times = self._reused(self._times, max(starts.size, room[0]) + ROUNDS)
        self._lo, self._hi = 0, starts.size
        relative = self._times[:starts.size]
        np.subtract(starts, self.origin, out=relative)
        self._times[starts.size:starts.size + ROUNDS] = BEYOND
        self._before = self._reused(self._before, max(n_cells, room[1]))
        counts = np.bincount(relative >> shift, minlength=n_cells)
        _exclusive_cumsum(counts, 0, self._before[:n_cells])
        self._c_lo, self._c_hi = 0, n_cells

    @staticmethod
    def _reused(buffer: np.ndarray, size: int) -> np.ndarray:
        """``buffer`` if it holds size with half as much to spare and is not far larger, else a new one.

        A window of a few microseconds keeps few starts but gets a chunk's worth each time: its buffers are
        compacted every chunk, and fresh memory each time would cost more in page faults than the work."""
        if size + size // 2 <= buffer.size <= 4 * size + 1024:
            return buffer
        return np.empty(size + size // 2, dtype=np.int64)

    def _first_hits(self, values: np.ndarray, minus: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per needle ``values[j] - minus[i]`` (shape (minus.size, values.size), in reused scratch arrays):
        (the needle, position of its cell's first start, whether that start is at or before it)."""
        shape = (minus.size, values.size)
        n = minus.size * values.size
        if self._hits.size < n:
            self._scratch, self._hits = np.empty((3, n + n // 4), dtype=np.int64), np.empty(n + n // 4, dtype=bool)
        needle, cell, first = (row.reshape(shape) for row in self._scratch[:, :n])
        hit = self._hits[:n].reshape(shape)
        np.subtract(values[None, :], minus[:, None], out=needle)
        np.right_shift(needle, self._shift, out=cell)
        # Needles are in covered cells (before the first drop, some may precede cell 0: clip makes them 0).
        np.take(self._before, cell, out=first, mode="clip")
        np.take(self._times, first, out=cell, mode="clip")
        np.greater_equal(needle, cell, out=hit)
        return needle, first, hit

    def ranks(self, values: np.ndarray, minus: int = 0) -> np.ndarray:
        """Number of kept starts at or before each needle ``values - minus`` (a new int64 array)."""
        needle, first, hit = (a[0] for a in self._first_hits(values, np.array([minus], dtype=np.int64)))
        rank = first + hit
        more = np.flatnonzero(hit)  # a start of the needle's cell at or before it: the next one may be too
        for _ in range(ROUNDS - 1):
            if not more.size:
                break
            hit = needle[more] >= self._times[rank[more]]
            more = more[hit]
            rank[more] += 1
        if more.size:  # a cell with more starts than rounds: search those needles
            rank[more] = self._lo + np.searchsorted(self.times, needle[more], side="right")
        rank -= self._lo
        return rank

    def rank_sums(self, values: np.ndarray, minus: np.ndarray) -> np.ndarray:
        """Per element m of ``minus``, the sum of the ranks of the needles ``values - m``: the number of
        (kept start, value) pairs with start <= value - m. Several m share each NumPy call."""
        sums = np.empty(minus.size, dtype=np.int64)
        rows = max(1, BLOCK // max(values.size, 1))
        for begin in range(0, minus.size, rows):
            sums[begin:begin + rows] = self._block_sums(values, minus[begin:begin + rows])
        return sums

    def _block_sums(self, values: np.ndarray, minus: np.ndarray) -> np.ndarray:
        needle, first, hit = (a.reshape(-1) for a in self._first_hits(values, minus))
        sums = first.reshape(minus.size, -1).sum(axis=1) - self._lo * values.size
        more = np.flatnonzero(hit)
        for step in range(1, ROUNDS + 1):
            if not more.size:
                return sums
            sums += np.bincount(more // values.size, minlength=minus.size)
            if step == ROUNDS:
                break
            hit = needle[more] >= self._times[first[more] + step]
            more = more[hit]
        # Cells with more starts than rounds: the search gives the whole rank; the rounds counted ROUNDS of it.
        found = self._lo + np.searchsorted(self.times, needle[more], side="right") - first[more] - ROUNDS
        sums += np.bincount(more // values.size, weights=found, minlength=minus.size).astype(np.int64)
        return sums
