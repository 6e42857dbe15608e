"""Flim, FrequencyStability, PulsePerSecondMonitor, TimeDifferencesND and PhaseNoise through a live taggerhub server,
with numbers checked."""

from __future__ import annotations

import numpy as np
import pytest

from taggerhub import client

SECOND = 10**12
LAB = """
[[device]]
serial = "SIMSCAN"
model = "Time Tagger Ultra"

[[device.source]]
kind = "pulsed_laser"
sync_channel = 1
photon_channels = [2]
repetition_hz = 10e6
detection_rate_hz = 200e3
lifetime_ps = 3000.0
jitter_ps = 0.0

[[device.source]]  # pixel clock: 50 us pixels
kind = "periodic"
channel = 3
frequency_hz = 20e3

[[device.source]]  # frame marker, 1 ns before every 100th pixel
kind = "periodic"
channel = 4
frequency_hz = 200.0
phase_ps = 4999999000

[[device.source]]  # a 1 MHz clock with 100 ps of white phase noise
kind = "periodic"
channel = 5
frequency_hz = 1e6
jitter_ps = 100.0

[[device.source]]  # PPS reference
kind = "periodic"
channel = 6
frequency_hz = 1.0
phase_ps = 1000000000

[[device.source]]  # PPS under test, 250 ns late
kind = "periodic"
channel = 7
frequency_hz = 1.0
phase_ps = 1000250000
"""


def truncated_exponential_lifetime(decay: np.ndarray, binwidth: int) -> float:
    """Maximum-likelihood lifetime of an exponential cut at the histogram's end: its mean delay fixes it."""
    window = decay.size * binwidth
    mean = float(np.sum((np.arange(decay.size) + 0.5) * binwidth * decay) / decay.sum())
    low, high = 1.0, 100.0 * window
    for _ in range(100):  # the truncated mean tau - W / (exp(W / tau) - 1) grows with tau
        tau = (low + high) / 2
        if tau - window / np.expm1(window / tau) < mean:
            low = tau
        else:
            high = tau
    return tau


@pytest.fixture
def scan_server(start_server, tmp_path):
    lab = tmp_path / "scan-lab.toml"
    lab.write_text(LAB)
    return start_server("--sim-config", str(lab), "--clock", "virtual")


def test_flim_frequency_stability_and_pps_through_the_server(scan_server):
    TT = client.createProxy(port=scan_server.port)
    tagger = TT.createTimeTagger()

    flim = TT.Flim(tagger, start_channel=1, click_channel=2, pixel_begin_channel=3, n_pixels=100, n_bins=100,
                   binwidth=100, frame_begin_channel=4, finish_after_outputframe=6)
    flim.startFor(SECOND // 10)
    assert flim.waitUntilFinished(60_000)
    assert flim.getFramesAcquired() == 6 and not flim.isAcquiring()
    frame = flim.getReadyFrameEx(5)
    assert frame.isValid() and frame.getFrameNumber() == 5 and frame.pixels == 100
    np.testing.assert_allclose(np.diff(frame.getPixelBegins()), 50_000_000, atol=100)
    summed = flim.getSummedFrames()
    assert summed.shape == (100, 100)
    in_window = 1 - np.exp(-10_000 / 3000)
    # 10 photons per pixel per frame: ~5800 in all, so 6 % is over four standard deviations
    assert summed.sum() == pytest.approx(6 * 100 * 10 * in_window, rel=0.06)
    assert truncated_exponential_lifetime(summed.sum(axis=0), 100) == pytest.approx(3000, rel=0.05)

    stability = TT.FrequencyStability(tagger, 5, [1, 10, 100], average=10, trace_len=100)
    stability.startFor(SECOND)
    assert stability.waitUntilFinished(60_000)
    data = stability.getDataObject()
    sigma_s = np.hypot(100.0, 9.0) / np.sqrt(10) * 1e-12  # source and Ultra jitter, averaged over 10 tags
    # The estimate's spread grows with the step (fewer independent samples): ~1 % at 10, ~3 % at 100.
    for scaled, tolerance in zip(data.getADEVScaled(), (0.04, 0.04, 0.12), strict=True):
        assert scaled == pytest.approx(sigma_s, rel=tolerance)
    np.testing.assert_allclose(data.getTau(), [1e-5, 1e-4, 1e-3], rtol=1e-9)

    pps = TT.PulsePerSecondMonitor(tagger, 6, [7])
    pps.startFor(4 * SECOND)
    assert pps.waitUntilFinished(60_000)
    pulses = pps.getDataObject()
    assert pulses.size >= 3
    np.testing.assert_allclose(pulses.getSignalOffsets()[:, 0], 250e-9, atol=100e-12)
    assert pulses.getStatus().all()
    TT.freeTimeTagger(tagger)


def test_time_differences_nd_through_the_server(scan_server):
    """Pixels (next 3, reset by the frame marker 4) by odd/even frame (next 4): a 2-D FLIM-like scan."""
    TT = client.createProxy(port=scan_server.port)
    tagger = TT.createTimeTagger()
    sync = TT.SynchronizedMeasurements(tagger)
    nd = TT.TimeDifferencesND(sync.getTagger(), click_channel=2, start_channel=1, next_channels=[3, 4],
                              sync_channels=[4, TT.CHANNEL_UNUSED], n_histograms=[100, 2], binwidth=100, n_bins=100)
    stream = TT.TimeTagStream(sync.getTagger(), 10**6, [2, 4])
    sync.startFor(SECOND // 10)
    assert sync.waitUntilFinished(60_000)
    data, tags = nd.getData(), stream.getData()
    times, channels = tags.getTimestamps(), tags.getChannels()
    markers = times[channels == 4]
    assert data.shape == (200, 100) and markers.size in (19, 20)
    # Every photon after the first frame marker pairs with the pulse that excited it, unless it came more than
    # the 10 ns the histogram spans after it: 1 - exp(-10 / 3) of them are in.
    photons = int(np.count_nonzero((channels == 2) & (times > markers[0])))
    in_window = 1 - np.exp(-10_000 / 3000)
    assert data.sum() == pytest.approx(photons * in_window, rel=0.03)
    assert truncated_exponential_lifetime(data.sum(axis=0), 100) == pytest.approx(3000, rel=0.05)
    frames = data.reshape(2, 100, 100).sum(axis=2)  # [frame parity, pixel]: the pixel index varies fastest
    full_frames = np.bincount(np.arange(markers.size) % 2 ^ 1, minlength=2)  # the first marker starts odd (1)
    per_frame = frames.sum(axis=1) / full_frames
    assert per_frame[0] == pytest.approx(per_frame[1], rel=0.1)
    assert frames.min() > 0  # 100 pixels per frame, none paused: the marker resets before the 101st
    assert nd.getRollovers().tolist() == [0, markers.size // 2]
    assert nd.getHistogramIndex().tolist()[1] == markers.size % 2
    with pytest.raises(Exception, match="one entry per dimension"):
        TT.TimeDifferencesND(tagger, 2, 1, [3], [4, 4], [10], 100, 100)
    TT.freeTimeTagger(tagger)


def test_phase_noise_through_the_server(scan_server):
    """The 1 MHz clock's white 100 ps (plus the Ultra's 9 ps) at its level, and integrated back to itself."""
    TT = client.createProxy(port=scan_server.port)
    tagger = TT.createTimeTagger()
    phase_noise = TT.PhaseNoise(tagger, 5, samples_per_octave=16)
    phase_noise.startFor(SECOND // 2)
    assert phase_noise.waitUntilFinished(60_000)
    data = phase_noise.getDataObject()
    sigma = np.hypot(100.0, 9.0) * 1e-12
    assert data.getFrequency() == pytest.approx(1e6, abs=0.01)
    offsets, noise, averaged = data.getOffset(), data.getPhaseNoise(), data.getAveragedSequences()
    np.testing.assert_allclose(offsets[-16:], np.arange(16, 32) * data.getFrequency() / 64, rtol=1e-12)
    assert averaged[-1] == pytest.approx(5e5 / 32, rel=0.01)
    level = 10 * np.log10(4 * np.pi**2 * 1e6 * sigma**2)  # L = 4 pi² f0 sigma² for white time jitter
    assert np.median(noise[averaged >= 100]) == pytest.approx(level, abs=0.3)
    assert data.getIntegratedJitter() == pytest.approx(sigma * np.sqrt(1 - 2 * 12e3 / 1e6), rel=0.02)
    assert data.getIntegratedJitter(upper_bound=1e5, lower_bound=1e4) == pytest.approx(
        sigma * np.sqrt(2 * 9e4 / 1e6), rel=0.04)
    with pytest.raises(Exception, match="samples_per_octave"):
        TT.PhaseNoise(tagger, 5, samples_per_octave=0)
    TT.freeTimeTagger(tagger)
