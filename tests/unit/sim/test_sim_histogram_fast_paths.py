"""The fast paths of HistogramLogBins/HistogramCustomBins/CorrelationPairs against brute-force pair counting.

The measurements get hand-made chunks (random cut points, empty chunks, pairs across chunk boundaries, ties
exactly at bin edges, equal timestamps on different channels), so every path is hit: pairs listed and binned
by the lookup table, beyond it, and counted by edges.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.engine import Chunk
from taggerhub.sim.pairs import EMPTY
from taggerhub.sim.ranks import ROUNDS, RankedHistory


def cut_into_chunks(channels: dict[int, np.ndarray], end: int, gap: tuple[int, int],
                    rng: np.random.Generator) -> list[Chunk]:
    """Chunks over [0, end): random cut points, and three inside the tag-free ``gap`` (empty chunks)."""
    in_gap = np.linspace(gap[0], gap[1], 5).astype(np.int64)[1:-1]
    last_tag = max(int(t[-1]) for t in channels.values())
    cuts = np.unique(np.concatenate([[0, end], rng.integers(1, last_tag, 25), in_gap]))
    return [Chunk(int(a), int(b), {ch: t[(t >= a) & (t < b)] for ch, t in channels.items()})
            for a, b in itertools.pairwise(cuts)]


def reference_histogram(clicks: np.ndarray, starts: np.ndarray, edges: np.ndarray, same: bool) -> np.ndarray:
    """Every (start, click) pair of distinct tags, binned by click - start on the edges."""
    dt = clicks[None, :] - starts[:, None]
    if same:
        dt = dt[~np.eye(dt.shape[0], dtype=bool)]
    dt = dt[(dt >= edges[0]) & (dt < edges[-1])]
    return np.bincount(np.searchsorted(edges, dt, side="right") - 1, minlength=edges.size - 1)


def lab_data(rng: np.random.Generator, edges: np.ndarray, n: int,
             span: int) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int]]:
    """Starts and clicks over ``span`` ps with a tag-free gap in the middle; some clicks sit exactly on
    ``start + edge`` (ties at bin edges) or on a start's time (dt = 0)."""
    gap = (span // 2, span // 2 + span // 5)
    starts = np.unique(rng.integers(0, span, n))
    starts = starts[(starts < gap[0]) | (starts >= gap[1])]
    on_edges = rng.choice(starts, n // 4) + rng.choice(edges[(edges > -span) & (edges < span)], n // 4)
    clicks = np.concatenate([rng.integers(0, span, n), on_edges, rng.choice(starts, 20)])
    clicks = np.unique(clicks[(clicks >= 0) & (clicks < span) & ((clicks < gap[0]) | (clicks >= gap[1]))])
    return starts, clicks, span + int(edges[-1]) + 1, gap


CASES = {
    # (n_tags, span in ps, factory(tagger, click_ch, start_ch) -> measurement)
    "log bins, sparse: all listed by the lookup table": (
        3000, 10**9, lambda t, c, s: TT.HistogramLogBins(t, c, s, -10, -6, 100)),
    "log bins, dense: wide bins counted by edges": (
        3000, 10**7, lambda t, c, s: TT.HistogramLogBins(t, c, s, -9, -5, 40)),
    "log bins, a lookup table that covers only the first bins": (
        2500, 10**8, lambda t, c, s: TT.HistogramLogBins(t, c, s, -11.3, -6, 30)),
    "custom bins from 0, the bench's ten": (
        3000, 10**8, lambda t, c, s: TT.HistogramCustomBins(
            t, c, s, [0, 1000, 2000, 3000, 5000, 10**4, 10**5, 10**6, 10**7, 10**8, 10**9])),
    "custom bins reaching below zero": (
        3000, 10**8, lambda t, c, s: TT.HistogramCustomBins(t, c, s, [-5000, -1000, 0, 1000, 1999, 2000, 2001, 10**6])),
    "custom bins, narrow first bins and a table that stops early": (
        3000, 10**8, lambda t, c, s: TT.HistogramCustomBins(t, c, s, [0, 3, 100, 10**6, 10**7])),
}


# How many of the first bins are listed, the others counted by edges: the histogram's own choice, or forced.
SPLITS = {"chosen split": None, "every edge counted": lambda n_bins: 0, "first bins listed": lambda n_bins: 2,
          "every bin listed": lambda n_bins: n_bins}


@pytest.mark.parametrize(("case", "same_channel", "split"), [
    # a channel against itself below zero is its positive half only: not one of the fast paths
    (case, same, split) for case in CASES for same in (False, True) for split in SPLITS
    if not (same and "below zero" in case) and (split == "chosen split" or "below zero" not in case)])
def test_histograms_equal_brute_force_pair_counting(make_tagger, case, same_channel, split):
    n, span, factory = CASES[case]
    tagger = make_tagger("ultra")
    tagger.xtra_setAutoStart(False)  # chunks are fed by hand below
    rng = np.random.default_rng(len(case) + same_channel)
    hist = factory(tagger, 1, 1 if same_channel else 2)
    edges = hist.getBinEdges()
    if SPLITS[split] is not None:
        chosen = SPLITS[split](edges.size - 1)
        hist._listing_split = lambda history: chosen
    starts, clicks, end, gap = lab_data(rng, edges, n, span)
    if same_channel:
        starts = clicks = np.unique(np.concatenate([starts, clicks]))
    chunks = cut_into_chunks({1: clicks} if same_channel else {1: clicks, 2: starts}, end, gap, rng)
    assert any(not c.get(1).size for c in chunks) and sum(bool(c.get(1).size) for c in chunks) > 10
    for chunk in chunks:
        hist._on_chunk(chunk)
    expected = reference_histogram(clicks, starts, edges, same_channel)
    assert expected.sum() > 500
    np.testing.assert_array_equal(hist.getData(), expected)


@pytest.mark.parametrize("pause", [3 * 10**7, 10**15])
@pytest.mark.parametrize("case", ["log bins, dense: wide bins counted by edges", "custom bins from 0, the bench's ten"])
def test_histograms_equal_brute_force_across_a_pause(make_tagger, case, pause):
    """A measurement stopped and started again gets no chunks for a while: a pause shorter than its widest
    bin (pairs across it still count) or far longer (the history starts afresh, with no cells across it)."""
    n, span, factory = CASES[case]
    tagger = make_tagger("ultra")
    tagger.xtra_setAutoStart(False)
    rng = np.random.default_rng(pause % 1000)
    hist = factory(tagger, 1, 2)
    edges = hist.getBinEdges()
    starts, clicks, end, gap = lab_data(rng, edges, n, span)
    chunks = cut_into_chunks({1: clicks, 2: starts}, end, gap, rng)
    inside = [c.begin_ps >= gap[0] and c.end_ps <= gap[1] for c in chunks]
    assert any(inside)
    moved = pause - (gap[1] - gap[0])  # the gap becomes a pause of `pause` ps, and no chunk is fed in it
    for chunk in (c for c, skip in zip(chunks, inside, strict=True) if not skip):
        if chunk.end_ps > gap[1]:
            chunk = Chunk(chunk.begin_ps + moved, chunk.end_ps + moved, {ch: t + moved for ch, t in chunk.tags.items()})
        hist._on_chunk(chunk)
        assert hist._history._before.size < 10**7
    starts = np.where(starts >= gap[1], starts + moved, starts)
    clicks = np.where(clicks >= gap[1], clicks + moved, clicks)
    np.testing.assert_array_equal(hist.getData(), reference_histogram(clicks, starts, edges, False))


def test_log_bins_lookup_table_equals_a_binary_search_at_every_edge(make_tagger):
    tagger = make_tagger("ultra")
    for hist in (TT.HistogramLogBins(tagger, 1, 2, -11.3, -6, 30), TT.HistogramLogBins(tagger, 1, 2, -10, -6, 100),
                 TT.HistogramCustomBins(tagger, 1, 2, [-7, 0, 3, 100, 10**6, 10**7])):
        edges = hist.getBinEdges()
        dt = np.concatenate([edges[:-1], edges[1:] - 1, edges[:-1] + 1,
                             np.random.default_rng(5).integers(edges[0], edges[-1], 10**5)])
        dt = dt[(dt >= edges[0]) & (dt < edges[-1])]
        np.testing.assert_array_equal(hist._bins_of(dt), np.searchsorted(edges, dt, side="right") - 1)


@pytest.mark.parametrize(("binwidth", "n_bins"), [(10, 1000), (7, 333), (1000, 40)])
def test_correlation_pairs_equal_brute_force(make_tagger, binwidth, n_bins):
    tagger = make_tagger("ultra")
    tagger.xtra_setAutoStart(False)
    rng = np.random.default_rng(binwidth + n_bins)
    span, offset = 2 * 10**7, binwidth * n_bins // 2
    gap = (span // 2, span // 2 + span // 5)
    ones = np.unique(rng.integers(0, span, 2000))
    ones = ones[(ones < gap[0]) | (ones >= gap[1])]
    twos = np.unique(np.concatenate([ones[::3] + 2000, ones[1::7]]))  # pairs 2 ns apart, equal timestamps
    # ties on bin edges of t(3) - t(1), and the window's ends
    threes = np.unique(np.concatenate([ones[::5] + rng.integers(-n_bins // 2, n_bins // 2, ones[::5].size) * binwidth,
                                       ones[2::11] - offset, ones[4::11] + offset - 1, rng.integers(0, span, 500)]))
    threes = threes[(threes >= 0) & ((threes < gap[0]) | (threes >= gap[1]))]
    channels = {1: ones, 2: twos, 3: threes}
    pairs = TT.CorrelationPairs(tagger, [1, 2, 3], binwidth=binwidth, n_bins=n_bins)
    for chunk in cut_into_chunks(channels, span + 10**6, gap, rng):
        pairs._on_chunk(chunk)
    counts = pairs.getDataObject().getCounts()
    with_self = pairs.getDataObject().getCounts(exclude_self_coincidences=False)
    for i, a in enumerate(channels.values()):
        for j, b in enumerate(channels.values()):
            dt = a[None, :] - b[:, None]  # t(i) - t(j)
            if i == j:
                dt = dt[~np.eye(a.size, dtype=bool)]
            dt = dt[(dt >= -offset) & (dt < binwidth * n_bins - offset)]
            expected = np.bincount((dt + offset) // binwidth, minlength=n_bins)
            np.testing.assert_array_equal(counts[i, j], expected, err_msg=f"channels {i}, {j}")
            if i == j:
                expected[offset // binwidth] += a.size
            np.testing.assert_array_equal(with_self[i, j], expected)
    assert counts[0, 1].sum() > 200 and counts[2, 0].sum() > 200


def test_ranked_history_equals_a_binary_search():
    """Ranks from the growing table equal searchsorted's over the starts kept, chunk after chunk: rates that
    change (cells rebuilt at another width), pauses, bursts of equal timestamps (cells holding more starts
    than the table compares, so searched), drops from the front, pauses; old starts it keeps cancel between
    edges."""
    rng = np.random.default_rng(17)
    searched = 0
    for _ in range(40):
        history, kept, everything = RankedHistory(), EMPTY, EMPTY
        widest = int(rng.choice([10**3, 10**5, 10**7]))
        begin = int(rng.integers(0, 10**12))
        for _ in range(int(rng.integers(5, 50))):
            if rng.random() < 0.1:  # a pause (the measurement stopped), longer or shorter than the window
                begin += int(rng.choice([widest // 2, 10**15]))
            end = begin + int(rng.integers(1, 10**6))
            rate = float(rng.choice([0, 1e-6, 1e-4, 1e-3, 3e-3]))  # per ps
            starts = rng.integers(begin, end, rng.poisson(rate * (end - begin)))
            if starts.size and rng.random() < 0.3:
                starts = np.concatenate([starts, np.repeat(starts[:1], int(rng.integers(ROUNDS, 3 * ROUNDS)))])
            starts.sort()
            clicks = np.sort(rng.integers(begin, end, int(rng.integers(0, 300))))
            history.extend(starts, begin, end, begin - widest)
            assert history._before.size < 10**7  # no cells across a long pause
            kept, everything = np.concatenate([kept, starts]), np.concatenate([everything, starts])
            times = history.times + history.origin
            assert np.isin(kept[kept > begin - widest], times).all()  # every start newer than the last drop
            np.testing.assert_array_equal(times, kept[kept >= times[0]] if times.size else EMPTY)
            edges = np.sort(rng.choice(widest, int(rng.integers(1, 6)), replace=False)).astype(np.int64)
            expected = [int(np.searchsorted(times, clicks - e, side="right").sum()) for e in edges]
            np.testing.assert_array_equal(history.rank_sums(clicks - history.origin, edges), expected)
            np.testing.assert_array_equal(history.ranks(clicks - history.origin, int(edges[0])),
                                          np.searchsorted(times, clicks - edges[0], side="right"))
            every_start = [int(np.searchsorted(everything, clicks - e, side="right").sum()) for e in edges]
            np.testing.assert_array_equal(np.diff(expected), np.diff(every_start))
            searched += any(np.bincount(np.unique(times, return_inverse=True)[1]) > ROUNDS)
            history.drop_before(end - widest)
            kept = kept[kept >= (history.times[0] + history.origin if history.times.size else end)]
            begin = end
    assert searched > 20
