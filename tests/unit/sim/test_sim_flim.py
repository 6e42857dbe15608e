"""FLIM frames from a simulated scan: pixel clock, frame marker, pulsed laser with a known lifetime."""

from __future__ import annotations

import numpy as np
import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.signals import PeriodicSource, PulsedLaserSource

SYNC, PHOTONS, PIXEL, FRAME = 1, 2, 3, 4
N_PIXELS, PIXEL_PS = 100, 50_000_000  # 100 pixels of 50 us: a 5 ms frame
LIFETIME_PS, DETECTION_HZ = 3000.0, 200e3


def scan_lab(make_tagger):
    frame_ps = N_PIXELS * PIXEL_PS
    return make_tagger("ultra", [
        PulsedLaserSource(sync_channel=SYNC, photon_channels=(PHOTONS,), repetition_hz=10e6,
                          detection_rate_hz=DETECTION_HZ, lifetime_ps=LIFETIME_PS, jitter_ps=0.0),
        PeriodicSource(channel=PIXEL, frequency_hz=1e12 / PIXEL_PS),
        PeriodicSource(channel=FRAME, frequency_hz=1e12 / frame_ps, phase_ps=frame_ps - 1000),  # just before a line
    ])


def lifetime_fit(histogram: np.ndarray, binwidth: int) -> float:
    """Lifetime from a straight-line fit of log counts over the bins that hold enough counts."""
    t = np.arange(histogram.size) * binwidth + binwidth / 2
    keep = histogram > 50
    slope = np.polyfit(t[keep], np.log(histogram[keep]), 1, w=np.sqrt(histogram[keep]))[0]
    return -1.0 / slope


class FrameRecorder(TT.FlimBase):
    """A vendor-style FlimBase subclass: pre_initialize=False, initialize() at the end of the constructor."""

    def __init__(self, tagger, **kwargs):
        self.frames = []
        super().__init__(tagger, pre_initialize=False, **kwargs)
        self.initialize()

    def frameReady(self, frame_number, data, pixel_begin_times, pixel_end_times, frame_begin_time, frame_end_time):
        self.frames.append((frame_number, np.array(data), np.array(pixel_begin_times), frame_begin_time,
                            frame_end_time))


def test_flim_frames_pixels_intensity_and_lifetime(make_tagger):
    tagger = scan_lab(make_tagger)
    args = dict(start_channel=SYNC, click_channel=PHOTONS, pixel_begin_channel=PIXEL, n_pixels=N_PIXELS,
                n_bins=100, binwidth=100, frame_begin_channel=FRAME)
    group = TT.SynchronizedMeasurements(tagger)  # both see the same tags from the same moment
    flim = TT.Flim(group.getTagger(), **args, finish_after_outputframe=6)
    recorder = FrameRecorder(group.getTagger(), **args)
    assert not recorder.isRunning()  # initialize() in a group waits for the group's start
    group.startFor(10**11)  # 100 ms: the Flim ends by itself after six frames
    assert flim.waitUntilFinished(60_000)
    assert not flim.isAcquiring() and not flim.isRunning()
    assert flim.getFramesAcquired() == 6
    flim.start()  # "After acquisition completed, it can't be started again."
    assert not flim.isRunning()

    frames = [flim.getReadyFrameEx(i) for i in range(6)]
    assert [f.getFrameNumber() for f in frames] == list(range(6)) and all(f.isValid() for f in frames)
    assert frames[0].getHistograms().shape == (N_PIXELS, 100) and frames[0].pixels == N_PIXELS and frames[0].bins == 100
    for f in frames:
        begins, ends = f.getPixelBegins(), f.getPixelEnds()
        # one pixel per pixel-clock period (to the tagger's own jitter of a few ps)
        np.testing.assert_allclose(np.diff(begins), PIXEL_PS, atol=100)
        np.testing.assert_array_equal(ends[:-1], begins[1:])  # without an end channel a pixel ends at the next
    # The scan is aligned: the first pixel tick starts frame 0, each frame marker (1 ns before a line) ends one.
    first = frames[0].getPixelBegins()[0]
    assert 0 <= first < PIXEL_PS
    np.testing.assert_allclose([f.getPixelBegins()[0] - first for f in frames], np.arange(6) * N_PIXELS * PIXEL_PS,
                               atol=100)
    np.testing.assert_array_equal(flim.getReadyFrame(), frames[-1].getHistograms())

    counts = np.array([f.getSummedCounts() for f in frames], dtype=np.float64)
    in_window = 1 - np.exp(-100 * 100 / LIFETIME_PS)  # photons later than the 10 ns of bins are not histogrammed
    expected_per_pixel = DETECTION_HZ * PIXEL_PS / 1e12 * in_window  # 10 photons per pixel per frame
    assert abs(counts.mean() - expected_per_pixel) < 0.03 * expected_per_pixel
    assert 0.7 < counts.std() / np.sqrt(expected_per_pixel) < 1.3  # Poisson noise per pixel
    intensity = np.array([f.getIntensities() for f in frames])
    spans = np.array([f.getPixelEnds() - f.getPixelBegins() for f in frames])
    np.testing.assert_allclose(intensity, counts / spans, rtol=1e-6)  # counts per ps of pixel time

    summed = flim.getSummedFrames()
    np.testing.assert_array_equal(summed, sum(f.getHistograms().astype(np.int64) for f in frames))
    assert abs(lifetime_fit(summed.sum(axis=0), 100) - LIFETIME_PS) < 0.05 * LIFETIME_PS
    np.testing.assert_allclose(flim.getSummedFramesIntensity().mean(), DETECTION_HZ / 1e12 * in_window, rtol=0.03)
    np.testing.assert_array_equal(flim.getIndex(), np.arange(100) * 100)

    # The FlimBase subclass saw the same frames, flat as the vendor's frameReady data (pixel i, bin j at i*n_bins+j).
    # It gets them on the engine thread after the Flim (created first) finished: wait for the group's end.
    assert group.waitUntilFinished(60_000)
    assert [f[0] for f in recorder.frames[:6]] == list(range(6))
    for (_number, data, begins, frame_begin, frame_end), info in zip(recorder.frames, frames, strict=False):
        np.testing.assert_array_equal(data.reshape(N_PIXELS, 100), info.getHistograms())
        assert frame_begin == begins[0] and frame_end == info.getPixelEnds()[-1]


def test_flim_averaging_and_no_frame_yet(make_tagger):
    tagger = scan_lab(make_tagger)
    group = TT.SynchronizedMeasurements(tagger)
    averaged = TT.Flim(group.getTagger(), SYNC, PHOTONS, PIXEL, N_PIXELS, 50, 200, frame_begin_channel=FRAME,
                       n_frame_average=3)
    assert not averaged.getReadyFrameEx().isValid() and averaged.getReadyFrameEx().getFrameNumber() == -1
    single = TT.Flim(group.getTagger(), SYNC, PHOTONS, PIXEL, N_PIXELS, 50, 200, frame_begin_channel=FRAME)
    group.startFor(int(3.2e10))  # 32 ms: six complete input frames
    assert group.waitUntilFinished(60_000)
    assert single.getFramesAcquired() == 6 and averaged.getFramesAcquired() == 2
    # an averaged output frame holds three input frames' counts
    np.testing.assert_array_equal(averaged.getSummedFrames(), single.getSummedFrames())
    assert averaged.getReadyFrameEx().getSummedCounts().sum() == pytest.approx(3 * single.getReadyFrameEx()
                                                                                .getSummedCounts().sum(), rel=0.1)
    with pytest.raises(ValueError, match="index must be -1"):
        single.getReadyFrame(0)  # finish_after_outputframe=0 keeps only the latest frame
    with pytest.raises(ValueError, match="n_pixels must be positive"):
        TT.Flim(tagger, SYNC, PHOTONS, PIXEL, 0, 50, 200)


def test_flim_with_pixel_end_channel_ignores_clicks_between_pixels(make_tagger):
    tagger = make_tagger("ultra", [
        PulsedLaserSource(sync_channel=SYNC, photon_channels=(PHOTONS,), repetition_hz=10e6,
                          detection_rate_hz=DETECTION_HZ, lifetime_ps=LIFETIME_PS),
        PeriodicSource(channel=PIXEL, frequency_hz=1e12 / PIXEL_PS),
        PeriodicSource(channel=5, frequency_hz=1e12 / PIXEL_PS, phase_ps=PIXEL_PS // 4),  # pixel end: 1/4 dwell
    ])
    flim = TT.Flim(tagger, SYNC, PHOTONS, PIXEL, 20, 100, 100, pixel_end_channel=5, finish_after_outputframe=100)
    flim.startFor(2 * 10**11)
    assert flim.waitUntilFinished(60_000) and flim.getFramesAcquired() == 100
    info = flim.getReadyFrameEx(99)
    np.testing.assert_allclose(info.getPixelEnds() - info.getPixelBegins(), PIXEL_PS // 4, atol=100)
    expected = 100 * 20 * DETECTION_HZ * (PIXEL_PS // 4) / 1e12 * (1 - np.exp(-100 * 100 / LIFETIME_PS))
    assert abs(flim.getSummedFrames().sum() - expected) < 0.05 * expected  # 4800 photons: 1.4% noise
