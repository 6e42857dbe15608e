"""The pair finder behind Correlation/Histogram/TimeDifferences against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from taggerhub.sim.pairs import PairWindow, pairs_and_reach, pairs_in_window


def _reference(starts, stops, lo, hi):
    diff = stops[None, :] - starts[:, None]
    a, b = np.nonzero((diff >= lo) & (diff < hi))
    return sorted(zip(a.tolist(), diff[a, b].tolist(), strict=True))


@pytest.mark.parametrize(("n", "span", "lo", "hi"), [
    (2000, 10**8, -10**4, 10**4),  # sparse: well under one start per window
    (2000, 10**6, -10**4, 10**4),  # dense: tens per window
    (500, 10**5, 0, 3000),
])
def test_pairs_in_window_finds_exactly_the_brute_force_pairs(n, span, lo, hi):
    rng = np.random.default_rng(n + span)
    starts, stops = np.sort(rng.integers(0, span, n)), np.sort(rng.integers(0, span, n))
    idx, dt = pairs_in_window(starts, stops, lo, hi)
    assert sorted(zip(idx.tolist(), dt.tolist(), strict=True)) == _reference(starts, stops, lo, hi)
    # the count of pairs at or beyond the window's end, which the histograms counting by edges reuse
    assert pairs_and_reach(starts, stops, lo, hi)[2] == int((stops[None, :] - starts[:, None] >= hi).sum())


def test_pair_window_over_chunks_counts_each_pair_once():
    rng = np.random.default_rng(9)
    starts, stops = np.sort(rng.integers(0, 10**7, 3000)), np.sort(rng.integers(0, 10**7, 3000))
    window = PairWindow(-20_000, 30_000)
    found = []
    for begin in range(0, 10**7, 10**6):
        a = starts[(starts >= begin) & (starts < begin + 10**6)]
        b = stops[(stops >= begin) & (stops < begin + 10**6)]
        found.append(window.feed(a, b, begin + 10**6)[1])
    expected = [dt for _, dt in _reference(starts, stops, -20_000, 30_000)]
    assert sorted(np.concatenate(found).tolist()) == sorted(expected)
