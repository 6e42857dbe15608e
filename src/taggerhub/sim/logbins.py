"""``HistogramLogBins``: a start-click histogram on logarithmic bins with the vendor's g2 normalisation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Chunk
from .enums import GatedChannelInitial
from .iterators import IteratorBase
from .pairs import EMPTY, PairWindow, pairs_and_reach
from .ranks import RankedHistory
from .signals import PS_PER_S

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase

LUT_CELLS = 1 << 17  # cells of a histogram's bin lookup table (two int64 arrays: 2 MiB)
PAIR_COST = 8.0  # cost of listing one pair, in ranks (one rank: one click at one edge, counted)
LISTING_COST = 1.0  # cost of listing per click, in ranks (a search for the click's first start beyond it)


class ChannelGate:
    """An evaluation gate (opened and closed by two channels) that a measurement may take."""

    def __init__(self, gate_open_channel: int, gate_close_channel: int,
                 initial: GatedChannelInitial = GatedChannelInitial.Closed):
        self._open, self._close = int(gate_open_channel), int(gate_close_channel)
        self._initial = GatedChannelInitial(int(initial))

    @property
    def gate_open_channel(self) -> int:
        """Channel that opens the gate."""
        return self._open

    @property
    def gate_close_channel(self) -> int:
        """Channel that closes the gate."""
        return self._close

    @property
    def initial(self) -> GatedChannelInitial:
        """State of the gate before the first open or close tag."""
        return self._initial


class HistogramLogBinsData:
    """Counts and normalisation of a HistogramLogBins at one moment."""

    def __init__(self, counts: np.ndarray, normalization: np.ndarray, capture_ps: int):
        self._counts = counts.astype(np.uint64)
        self._norm = normalization
        self._capture_ps = int(capture_ps)

    @property
    def capture_duration(self) -> int:
        """Capture duration in ps."""
        return self._capture_ps

    @property
    def accumulation_time_click(self) -> int:
        """Time in ps during which clicks were evaluated (the whole capture: no gates in the simulation)."""
        return self._capture_ps

    @property
    def accumulation_time_start(self) -> int:
        """Time in ps during which starts were evaluated."""
        return self._capture_ps

    def getCounts(self) -> np.ndarray:
        """Counts per bin."""
        return self._counts.copy()

    def getG2Normalization(self) -> np.ndarray:
        """Expected counts per bin for uncorrelated signals at the measured rates."""
        return self._norm.copy()

    def getG2(self) -> np.ndarray:
        """Counts divided by the normalisation: 1 for uncorrelated signals."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._counts / self._norm


class HistogramLogBins(IteratorBase):
    """Histogram of ``click - start`` with bin edges from 10**exp_start to 10**exp_stop seconds, log-spaced."""

    def __init__(self, tagger: TimeTaggerBase, click_channel: int, start_channel: int, exp_start: float,
                 exp_stop: float, n_bins: int, click_gate: ChannelGate | None = None,
                 start_gate: ChannelGate | None = None):
        if click_gate is not None or start_gate is not None:
            raise ValueError("click_gate and start_gate are not supported by the simulator; "
                             "use a GatedChannel as the input instead")
        exp_start, exp_stop, n_bins = float(exp_start), float(exp_stop), int(n_bins)
        if n_bins < 1 or not exp_start < exp_stop:
            raise ValueError(f"need n_bins >= 1 and exp_start < exp_stop, got {n_bins}, {exp_start}, {exp_stop}")
        edges = np.rint(np.logspace(exp_start, exp_stop, n_bins + 1) * PS_PER_S).astype(np.int64)
        if (np.diff(edges) <= 0).any():
            raise ValueError("bins narrower than 1 ps: raise exp_start or lower n_bins")
        self._log_scale = (exp_start, n_bins / (exp_stop - exp_start))
        self._setup(tagger, click_channel, start_channel, edges)

    _log_scale: tuple[float, float] | None = None  # (exp_start, bins per decade) for log-spaced edges

    def _bins_of(self, dt: np.ndarray) -> np.ndarray:
        """Bin index of each difference (all within the edges): from the lookup table where it reaches, else
        from the logarithm (log-spaced edges) or a binary search."""
        lut_end = self._lut[0]
        if lut_end >= self._edges[-1]:  # the table covers every bin
            return self._bins_in_lut(dt)
        if dt.size == 0 or lut_end <= self._edges[0]:
            return self._bins_beyond_lut(dt)
        inside = dt < lut_end
        if inside.all():
            return self._bins_in_lut(dt)
        bins = np.empty(dt.size, dtype=np.int32)
        bins[inside] = self._bins_in_lut(dt[inside])
        bins[~inside] = self._bins_beyond_lut(dt[~inside])
        return bins

    def _bins_in_lut(self, dt: np.ndarray) -> np.ndarray:
        """A cell is no wider than any bin, so it holds at most one edge: the bin of its start, or the next."""
        _, shift, lut, next_edge = self._lut
        cell = (dt - self._edges[0]) >> shift
        bins = lut[cell]
        bins += dt >= next_edge[cell]
        return bins

    def _build_lut(self) -> None:
        """Bin index per cell of 2**shift ps (the largest power of two no wider than the narrowest bin),
        over the first bins up to LUT_CELLS cells: one gather and one compare per pair instead of a search."""
        edges = self._edges
        shift = int(np.diff(edges).min()).bit_length() - 1
        reach = (edges - edges[0]) >> shift
        last = int(np.searchsorted(reach, LUT_CELLS, side="right")) - 1  # edges[last] bounds the table
        if last < 1:
            self._lut = (int(edges[0]), 0, EMPTY, EMPTY)
            return
        lut_end = int(edges[last])
        starts = edges[0] + (np.arange(((lut_end - 1 - edges[0]) >> shift) + 1, dtype=np.int64) << shift)
        lut = np.searchsorted(edges, starts, side="right") - 1
        self._lut = (lut_end, shift, lut.astype(np.int32), edges[lut + 1])

    def _bins_beyond_lut(self, dt: np.ndarray) -> np.ndarray:
        if self._log_scale is None:
            return np.searchsorted(self._edges, dt, side="right") - 1
        exp_start, per_decade = self._log_scale
        idx = ((np.log10(dt * (1.0 / PS_PER_S)) - exp_start) * per_decade).astype(np.int64)
        last = self._hist.size - 1
        for _ in range(self._hist.size):  # bounded; one round almost always settles every index
            np.clip(idx, 0, last, out=idx)
            low, high = dt < self._edges[idx], dt >= self._edges[idx + 1]
            if not (low.any() or high.any()):
                return idx
            idx += high.astype(np.int64) - low
        return np.searchsorted(self._edges, dt, side="right") - 1

    def _setup(self, tagger: TimeTaggerBase, click_channel: int, start_channel: int, edges: np.ndarray) -> None:
        n_bins = edges.size - 1
        self._edges = edges
        self._hist = np.zeros(n_bins, dtype=np.int64)
        self._n = np.zeros(2, dtype=np.int64)  # clicks, starts
        self._window = PairWindow(int(edges[0]), int(edges[-1]))
        self._history = RankedHistory()  # starts that can still pair with later clicks
        self._build_lut()
        super().__init__(tagger, [int(click_channel), int(start_channel)])

    def _describe(self) -> dict[str, Any]:
        return {"bin_edges_ps": [int(self._edges[0]), int(self._edges[-1])], "n_bins": int(self._hist.size)}

    def _on_clear(self) -> None:
        self._hist[:] = 0
        self._n[:] = 0
        self._window.clear()
        self._history.clear()

    def _on_chunk(self, chunk: Chunk) -> None:
        clicks, starts = chunk.get(self._channels[0]), chunk.get(self._channels[1])
        self._n += (clicks.size, starts.size)
        if self._edges[0] >= 0:
            self._count_by_edges(clicks, starts, chunk.begin_ps, chunk.end_ps)
            if self._edges[0] == 0 and self._channels[0] == self._channels[1] and self._hist.size:
                self._hist[0] -= clicks.size  # a tag does not pair with itself (dt = 0)
            return
        # Bins reaching zero or below (HistogramCustomBins): pair by pair, with starts after the click.
        _, dt = self._window.feed(starts, clicks, chunk.end_ps)
        if self._channels[0] == self._channels[1]:
            dt = dt[dt > 0]
        if dt.size:
            self._hist += np.bincount(self._bins_of(dt), minlength=self._hist.size)[: self._hist.size]

    def _count_by_edges(self, clicks: np.ndarray, starts: np.ndarray, begin_ps: int, end_ps: int) -> None:
        """Add this chunk's clicks, counting starts per bin from the edges instead of listing pairs.

        With all edges >= 0 every start of a pair precedes its click, so it is already known. For each edge
        e, sum over clicks c of #{starts <= c - e} is the number of pairs with c - s >= e; differences of
        neighbouring edges are the bin counts. That costs one rank per click and edge (a few NumPy passes,
        see :mod:`taggerhub.sim.ranks`), however many starts lie in the window: an FCS histogram over
        1 us..1 s at 50 kHz would otherwise list 2.5e9 pairs per second. Starts older than the widest edge
        add the same to every edge and cancel (the history may keep a few).
        """
        self._history.extend(starts, begin_ps, end_ps, begin_ps - int(self._edges[-1]))
        history = self._history.times  # relative to the history's origin, and so are the clicks below
        if clicks.size and history.size:
            clicks = clicks - self._history.origin
            # Bins below edge `split` hold few pairs per click: list those pairs; count the rest by edges.
            split = self._listing_split(history)
            reached = np.empty(self._hist.size + 1 - split, dtype=np.int64)
            counted = self._edges[split + (1 if split else 0):]
            if split:
                after = self._history.ranks(clicks, int(self._edges[0])) if counted.size else None
                _, dt, reached[0] = pairs_and_reach(history, clicks, int(self._edges[0]), int(self._edges[split]),
                                                    after)
                if dt.size:
                    self._hist += np.bincount(self._bins_of(dt), minlength=self._hist.size)[: self._hist.size]
            if counted.size:
                reached[reached.size - counted.size:] = self._history.rank_sums(clicks, counted)
                self._hist[split:] += reached[:-1] - reached[1:]
        self._history.drop_before(end_ps - int(self._edges[-1]))

    def _listing_split(self, history: np.ndarray) -> int:
        """How many of the first bins to fill by listing pairs; the others are counted by edges.

        Counting costs one rank per click and edge, listing about PAIR_COST ranks per pair found (the pairs
        per click below an edge are estimated from the start rate) plus LISTING_COST per click: the split
        with the least cost. Short windows (100 ps..1 us at MHz rates) hold a few starts per click, so most
        of their bins are listed; FCS windows (up to 1 s) hold thousands, so their wide bins are counted,
        while their narrow first bins may still be listed.
        """
        span = int(history[-1] - history[0])
        if span <= 0:
            return 0
        starts_per_ps = history.size / span
        listed = starts_per_ps * (self._edges - self._edges[0]).astype(np.float64)  # pairs per click below each edge
        cost = PAIR_COST * listed - np.arange(self._edges.size)
        cost[1:] += LISTING_COST
        return int(np.argmin(cost))

    def _normalization(self) -> np.ndarray:
        # Pairs (s, c) with c - s in [a, b) over a capture of length T: (b - a) T - (b^2 - a^2) / 2 (in ps^2),
        # times the two rates (per ps).
        capture = float(self._capture_ps)
        a, b = self._edges[:-1].astype(float), self._edges[1:].astype(float)
        overlap = np.clip((b - a) * capture - (b * b - a * a) / 2, 0.0, None)
        if capture == 0:
            return np.zeros(self._hist.size)
        return overlap * (self._n[0] / capture) * (self._n[1] / capture)

    def getBinEdges(self) -> np.ndarray:
        """The n_bins + 1 bin edges in ps."""
        return self._edges.copy()

    def getData(self) -> np.ndarray:
        """Counts per bin (deprecated by the vendor; see getDataObject)."""
        with self._lock:
            return self._hist.astype(np.uint64)

    def getDataNormalizedCountsPerPs(self) -> np.ndarray:
        """Counts divided by each bin's width in ps."""
        with self._lock:
            return self._hist / np.diff(self._edges)

    def getDataNormalizedG2(self) -> np.ndarray:
        """g2 per bin: 1 for uncorrelated signals."""
        return self.getDataObject().getG2()

    def getDataObject(self) -> HistogramLogBinsData:
        """Counts and normalisation at this moment."""
        with self._lock:
            return HistogramLogBinsData(self._hist, self._normalization(), self._capture_ps)


class HistogramCustomBins(HistogramLogBins):
    """Histogram of ``click - start`` on explicitly given bin edges (ps), normalised like HistogramLogBins."""

    def __init__(self, tagger: TimeTaggerBase, click_channel: int, start_channel: int, binedges: list[int],
                 click_gate: ChannelGate | None = None, start_gate: ChannelGate | None = None):
        if click_gate is not None or start_gate is not None:
            raise ValueError("click_gate and start_gate are not supported by the simulator; "
                             "use a GatedChannel as the input instead")
        edges = np.asarray([int(e) for e in binedges], dtype=np.int64)
        if edges.size < 2 or (np.diff(edges) <= 0).any():
            raise ValueError("binedges needs at least two strictly increasing values (ps)")
        self._setup(tagger, click_channel, start_channel, edges)


# The vendor's HistogramCustomBins.getDataObject returns a HistogramLogBinsData; this alias lets the vendor's
# TimeTaggerRPC server (which looks up "<measurement>Data" for every getDataObject) serve the simulator.
HistogramCustomBinsData = HistogramLogBinsData
