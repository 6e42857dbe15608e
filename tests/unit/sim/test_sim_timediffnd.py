"""TimeDifferencesND against the state machine its docstring describes, run tag by tag, and against
TimeDifferences on the same tags."""

from __future__ import annotations

import bisect

import numpy as np
import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.signals import PeriodicSource, PoissonSource, PulsedLaserSource

SECOND = 10**12
BINWIDTH, N_BINS = 100, 100
LASER, PHOTON, PIXEL, LINE, NEXT_B, SYNC_B = 1, 2, 3, 4, 6, 7


@pytest.fixture
def scan_tagger(make_tagger):
    return make_tagger("ultra", [
        PulsedLaserSource(sync_channel=LASER, photon_channels=(PHOTON,), repetition_hz=1e6,
                          detection_rate_hz=200e3, lifetime_ps=3000.0, jitter_ps=0.0),
        PeriodicSource(channel=PIXEL, frequency_hz=20e3, phase_ps=1000),  # 10 pixels per line
        PeriodicSource(channel=LINE, frequency_hz=2e3),
        PoissonSource(channel=NEXT_B, rate_hz=5e3),  # asynchronous steps and resets in a second dimension
        PoissonSource(channel=SYNC_B, rate_hz=700.0),
    ])


def reference(tags: np.ndarray, chans: np.ndarray, axes: list[tuple[int, int | None, int]],
              stop_after: list[int] | None = None) -> tuple[np.ndarray, list[int], list[int]]:
    """The documented state machine, one tag at a time: histograms, final indices and rollovers."""
    sizes = [n for _, _, n in axes]
    index = [-2 if sync is not None else 0 for _, sync, _ in axes]
    rollovers = [0] * len(axes)
    stop_after = stop_after or [0] * len(axes)
    priority = {ch: 0 for _, ch, _ in axes if ch is not None} | {ch: 1 for ch, _, _ in axes}
    order = sorted(range(tags.size), key=lambda i: (tags[i], priority.get(int(chans[i]), 2)))
    counted: list[tuple[int, int]] = []  # (start time, flat histogram index)
    stopped_at = None
    for i in order:
        ch, t = int(chans[i]), int(tags[i])
        for d, (next_ch, sync_ch, n) in enumerate(axes):
            if ch == sync_ch:
                index[d] = -1
            if ch == next_ch:
                if sync_ch is None:
                    rollovers[d] += index[d] == n - 1
                    index[d] = (index[d] + 1) % n
                elif index[d] == -1:
                    index[d] = 0
                elif index[d] == n - 1:
                    index[d], rollovers[d] = -2, rollovers[d] + 1
                elif index[d] >= 0:
                    index[d] += 1
                if stop_after[d] and rollovers[d] == stop_after[d]:
                    stopped_at = t
        if stopped_at is not None:
            break  # the measurement stops: later starts and clicks are not seen
        if ch == LASER and min(index) >= 0:
            counted.append((t, sum(ix * int(np.prod(sizes[:d])) for d, ix in enumerate(index))))
    clicks = tags[(chans == PHOTON) & (tags < (stopped_at if stopped_at is not None else np.inf))].tolist()
    hist = np.zeros((int(np.prod(sizes)), N_BINS), dtype=np.int64)
    for t, flat in counted:
        for c in clicks[bisect.bisect_left(clicks, t):bisect.bisect_left(clicks, t + BINWIDTH * N_BINS)]:
            hist[flat, (c - t) // BINWIDTH] += 1
    return hist, index, rollovers


def capture(tagger, make, duration_ps: int = SECOND // 20, extra_channels: tuple[int, ...] = ()):
    sync = TT.SynchronizedMeasurements(tagger)
    measurements = make(sync.getTagger())
    stream = TT.TimeTagStream(sync.getTagger(), 10**7, [LASER, PHOTON, PIXEL, LINE, NEXT_B, SYNC_B, *extra_channels])
    sync.startFor(duration_ps)
    assert sync.waitUntilFinished(60_000)
    data = stream.getData()
    return measurements, data.getTimestamps(), data.getChannels()


def test_two_dimensions_with_syncs_match_the_documented_state_machine(scan_tagger):
    axes = [(PIXEL, LINE, 8), (NEXT_B, SYNC_B, 5)]  # 10 pixels per line: the 9th rolls over and pauses
    nd, tags, chans = capture(scan_tagger, lambda t: TT.TimeDifferencesND(
        t, PHOTON, LASER, [PIXEL, NEXT_B], [LINE, SYNC_B], [8, 5], BINWIDTH, N_BINS))
    expected, index, rollovers = reference(tags, chans, axes)
    data = nd.getData()
    assert data.shape == (40, N_BINS) and data.dtype == np.int32
    np.testing.assert_array_equal(data, expected)
    assert nd.getHistogramIndex().tolist() == index
    assert nd.getRollovers().tolist() == rollovers and rollovers[0] >= 90  # ~one per line
    np.testing.assert_array_equal(nd.getIndex(), np.arange(N_BINS) * BINWIDTH)
    # Physics: the pixels 8 and 9 of each line are paused, so only 8 of 10 laser pulses count, spread evenly
    # over the 8 pixel histograms; each photon histogram decays with the 3 ns lifetime.
    per_pixel = data.reshape(5, 8, N_BINS).sum(axis=(0, 2))  # layout_left: pixel index varies fastest
    assert per_pixel.min() > 0.8 * per_pixel.mean()
    decay = data.sum(axis=0)
    early, late = decay[:30].sum(), decay[30:60].sum()
    assert early / late == pytest.approx(np.exp(3000 / 3000), rel=0.1)


def test_a_sync_at_the_same_time_as_a_next_tag_comes_first(scan_tagger):
    """The documented order sync -> next -> start: a line marker on the line's first pixel starts pixel 0."""
    line = TT.EventGenerator(scan_tagger, PIXEL, [0], trigger_divider=10)  # every 10th pixel, same ps
    axes = [(PIXEL, line.getChannel(), 10)]
    nd, tags, chans = capture(scan_tagger, lambda t: TT.TimeDifferencesND(
        t, PHOTON, LASER, [PIXEL], [line.getChannel()], [10], BINWIDTH, N_BINS), extra_channels=(line.getChannel(),))
    lines, pixels = tags[chans == line.getChannel()], tags[chans == PIXEL]
    assert lines.size > 90 and np.isin(lines, pixels).all()  # the ties are real
    expected, index, rollovers = reference(tags, chans, axes)
    assert nd.getHistogramIndex().tolist() == index
    np.testing.assert_array_equal(nd.getData(), expected)
    assert rollovers == [0] == nd.getRollovers().tolist()  # the sync always comes before the 11th pixel
    # 10 pixels per line, all counted: the histograms hold nearly every laser pulse's photons, evenly.
    per_pixel = expected.sum(axis=1)
    assert per_pixel.min() > 0.8 * per_pixel.mean()


def test_without_syncs_one_dimension_equals_time_differences_on_the_same_tags(scan_tagger):
    def make(t):
        return (TT.TimeDifferencesND(t, PHOTON, LASER, [NEXT_B], [TT.CHANNEL_UNUSED], [5], BINWIDTH, N_BINS),
                TT.TimeDifferencesND(t, PHOTON, LASER, [NEXT_B, PIXEL], [TT.CHANNEL_UNUSED, TT.CHANNEL_UNUSED],
                                     [5, 1], BINWIDTH, N_BINS),
                TT.TimeDifferences(t, PHOTON, LASER, NEXT_B, binwidth=BINWIDTH, n_bins=N_BINS, n_histograms=5),
                # Auto-correlation (start = click): a tag is not its own stop, in both.
                TT.TimeDifferencesND(t, PHOTON, PHOTON, [NEXT_B], [TT.CHANNEL_UNUSED], [5], 10_000, 1000),
                TT.TimeDifferences(t, PHOTON, PHOTON, NEXT_B, binwidth=10_000, n_bins=1000, n_histograms=5))

    (nd, nd2, td, nd_auto, td_auto), tags, chans = capture(scan_tagger, make)
    np.testing.assert_array_equal(nd_auto.getData(), td_auto.getData())
    auto = nd_auto.getData().sum(axis=0)  # photon pairs bunch at multiples of the 1 us laser period
    assert auto[99:101].sum() > 20 * auto[45:55].sum() + 100
    expected, index, rollovers = reference(tags, chans, [(NEXT_B, None, 5)])
    np.testing.assert_array_equal(nd.getData(), td.getData())
    np.testing.assert_array_equal(nd.getData(), expected)
    np.testing.assert_array_equal(nd2.getData(), expected)  # a dimension of size 1 changes nothing
    assert nd.getRollovers().tolist() == rollovers == [td.getCounts()]
    assert nd.getHistogramIndex().tolist() == index == [td.getHistogramIndex()]
    assert nd2.getRollovers().tolist()[1] == np.count_nonzero(chans == PIXEL)  # every step of a size-1 axis


def test_time_differences_with_a_sync_follows_the_documented_state_machine(scan_tagger):
    """A line scan: each line marker waits for the next pixel to start histogram 0; pixels past the 8th pause."""
    (td, nd), tags, chans = capture(scan_tagger, lambda t: (
        TT.TimeDifferences(t, PHOTON, LASER, PIXEL, LINE, binwidth=BINWIDTH, n_bins=N_BINS, n_histograms=8),
        TT.TimeDifferencesND(t, PHOTON, LASER, [PIXEL], [LINE], [8], BINWIDTH, N_BINS)))
    expected, index, rollovers = reference(tags, chans, [(PIXEL, LINE, 8)])
    np.testing.assert_array_equal(td.getData(), expected)
    np.testing.assert_array_equal(td.getData(), nd.getData())
    assert td.getCounts() == rollovers[0] >= 90  # a rollover per line (the 9th pixel), not one per sync
    assert td.getHistogramIndex() == index[0]
    per_pixel = expected.sum(axis=1)
    assert per_pixel.min() > 0.8 * per_pixel.mean()  # every line's 8 pixels counted alike


def test_max_rollovers_stop_at_the_first_limit_met(scan_tagger):
    axes = [(PIXEL, LINE, 8), (NEXT_B, SYNC_B, 5)]

    def make(t):
        nd = TT.TimeDifferencesND(t, PHOTON, LASER, [PIXEL, NEXT_B], [LINE, SYNC_B], [8, 5], BINWIDTH, N_BINS)
        nd.setMaxRollovers([12, 0])
        return nd

    nd, tags, chans = capture(scan_tagger, make)
    expected, _, rollovers = reference(tags, chans, axes, stop_after=[12, 0])
    assert nd.getRollovers().tolist()[0] == 12 == rollovers[0]
    np.testing.assert_array_equal(nd.getData(), expected)
    assert 0 < expected.sum() < reference(tags, chans, axes)[0].sum() / 2  # 12 of ~100 lines
    assert not nd.isRunning()
    nd.clear()
    assert nd.getData().sum() == 0 and nd.getRollovers().tolist() == [0, 0]


def test_bad_arguments_are_named(scan_tagger):
    with pytest.raises(ValueError, match="one entry per dimension"):
        TT.TimeDifferencesND(scan_tagger, PHOTON, LASER, [PIXEL], [LINE, SYNC_B], [8], BINWIDTH, N_BINS)
    with pytest.raises(ValueError, match="needs a next channel"):
        TT.TimeDifferencesND(scan_tagger, PHOTON, LASER, [TT.CHANNEL_UNUSED], [LINE], [8], BINWIDTH, N_BINS)
    nd = TT.TimeDifferencesND(scan_tagger, PHOTON, LASER, [PIXEL], [LINE], [8], BINWIDTH, N_BINS)
    with pytest.raises(ValueError, match="max_rollovers needs 1 values"):
        nd.setMaxRollovers([1, 2])
    assert nd.getHistogramIndex().tolist() == [-2]  # waiting for the first sync
