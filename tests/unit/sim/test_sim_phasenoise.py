"""PhaseNoise on simulated clocks whose white time jitter is known: level, integrated jitter, frequency, layout."""

from __future__ import annotations

import numpy as np
import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.models import model_by_name
from taggerhub.sim.signals import PeriodicSource

SECOND = 10**12
ULTRA_JITTER_PS = model_by_name("ultra").jitter_rms_ps
F0 = 10e6


def white_level_dbc(frequency: float, sigma_s: float) -> float:
    """L(f) of white time jitter sigma: S_x = 2 sigma² / f0 one-sided, L = (2 pi f0)² S_x / 2."""
    return 10 * np.log10(4 * np.pi**2 * frequency * sigma_s**2)


@pytest.fixture
def clocks(make_tagger):
    return make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=F0, jitter_ps=100.0),
                                 PeriodicSource(channel=2, frequency_hz=F0 + 250.0, jitter_ps=30.0)])


def test_white_jitter_gives_its_phase_noise_level_and_integrates_back_to_itself(clocks):
    noisy, quiet = TT.PhaseNoise(clocks, 1), TT.PhaseNoise(clocks, 2, samples_per_octave=16)
    sync = TT.SynchronizedMeasurements(clocks)
    sync.registerMeasurement(noisy)
    sync.registerMeasurement(quiet)
    sync.startFor(SECOND // 10)
    assert sync.waitUntilFinished(60_000)
    for measurement, source_ps, spo, f0 in ((noisy, 100.0, 32, F0), (quiet, 30.0, 16, F0 + 250.0)):
        data = measurement.getDataObject()
        sigma = np.hypot(source_ps, ULTRA_JITTER_PS) * 1e-12  # the source's and the tagger's jitter add
        assert data.getFrequency() == pytest.approx(f0, abs=0.05)  # the offset clock's 250 Hz shows
        offsets, noise, averaged = data.getOffset(), data.getPhaseNoise(), data.getAveragedSequences()
        # Quasi-logarithmic: spo samples per octave, the top octave f0/4 .. f0/2 with the most averages
        # (1 M tags in sequences of 4 * spo overlapping by half).
        assert offsets.size % spo == 0 and np.all(np.diff(offsets) > 0)
        np.testing.assert_allclose(offsets[-spo:], np.arange(spo, 2 * spo) * data.getFrequency() / (4 * spo),
                                   rtol=1e-12)
        np.testing.assert_allclose(offsets[-2 * spo:-spo], offsets[-spo:] / 2, rtol=1e-9)
        assert averaged[-1] == pytest.approx(1e6 / (2 * spo), rel=0.01)
        assert np.all(np.diff(averaged) >= 0)
        # The level is flat at 4 pi² f0 sigma² (white phase noise): within 0.3 dB where 100+ sequences
        # are averaged (each bin's estimate scatters by ~10 % / sqrt(sequences)).
        well_averaged = averaged >= 100
        assert well_averaged.sum() >= 6 * spo
        expected = white_level_dbc(f0, sigma)
        assert np.median(noise[well_averaged]) == pytest.approx(expected, abs=0.3)
        assert np.all(np.abs(noise[averaged >= 1000] - expected) < 3.0)  # no bin far off: no spurs, no slope
        # Integrated from 12 kHz to Nyquist: sigma * sqrt(1 - 2 * 12 kHz / f0); over 0.1 .. 1 MHz a share of it.
        assert data.getIntegratedJitter() == pytest.approx(sigma * np.sqrt(1 - 2 * 12e3 / f0), rel=0.02)
        assert data.getIntegratedJitter(1e5, 1e6) == pytest.approx(sigma * np.sqrt(2 * 9e5 / f0), rel=0.03)
    with pytest.raises(ValueError, match="lower_bound < upper_bound"):
        data.getIntegratedJitter(2e6, 1e6)


def test_a_clock_with_less_jitter_shows_proportionally_less_phase_noise(clocks):
    """The 100 ps clock sits 20 log10(100.4 / 31.3) dB above the 30 ps one at every offset they share."""
    noisy, quiet = TT.PhaseNoise(clocks, 1, 8), TT.PhaseNoise(clocks, 2, 8)
    sync = TT.SynchronizedMeasurements(clocks)
    sync.registerMeasurement(noisy)
    sync.registerMeasurement(quiet)
    sync.startFor(SECOND // 20)
    assert sync.waitUntilFinished(60_000)
    a, b = noisy.getDataObject(), quiet.getDataObject()
    many = a.getAveragedSequences() >= 1000
    gap = a.getPhaseNoise()[many] - b.getPhaseNoise()[many]
    ratio_db = 20 * np.log10(np.hypot(100, ULTRA_JITTER_PS) / np.hypot(30, ULTRA_JITTER_PS))
    assert np.median(gap) == pytest.approx(ratio_db, abs=0.3)
    noisy.clear()
    empty = noisy.getDataObject()
    assert empty.getOffset().size == 0 and np.isnan(empty.getFrequency()) and np.isnan(empty.getIntegratedJitter())


def test_bad_arguments_are_named(clocks):
    with pytest.raises(ValueError, match="samples_per_octave"):
        TT.PhaseNoise(clocks, 1, samples_per_octave=0)
    with pytest.raises(ValueError, match="channel"):
        TT.PhaseNoise(clocks, 99)
