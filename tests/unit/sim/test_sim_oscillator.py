"""Experimental.OscillatorSimulation: each noise type seen by the measurement made for it, with numbers checked.

Virtual channels carry no tagger jitter, so the only other noise is the rounding of tags to whole picoseconds
(white, 0.29 ps RMS); the coefficients are chosen well above it.
"""

from __future__ import annotations

import numpy as np
import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias

SECOND = 10**12
Osc = TT.Experimental.OscillatorSimulation


def acquire(tagger, *measurements, duration_ps: int = SECOND) -> None:
    sync = TT.SynchronizedMeasurements(tagger)
    for measurement in measurements:
        sync.registerMeasurement(measurement)
    sync.startFor(duration_ps)
    assert sync.waitUntilFinished(120_000)


def test_white_phase_noise_is_the_coefficient_as_jitter(make_tagger):
    tagger = make_tagger("ultra")
    oscillator = Osc(tagger, 10e6, coeff_phase_white=50e-12, seed=3)
    phase_noise = TT.PhaseNoise(tagger, oscillator.getChannel())
    acquire(tagger, phase_noise, duration_ps=SECOND // 10)
    data = phase_noise.getDataObject()
    sigma = np.hypot(50e-12, 0.29e-12)
    assert data.getFrequency() == pytest.approx(10e6, abs=0.1)  # 50 ps over 0.1 s: ~0.02 Hz of noise
    many = data.getAveragedSequences() >= 100
    assert np.median(data.getPhaseNoise()[many]) == pytest.approx(10 * np.log10(4 * np.pi**2 * 10e6 * sigma**2),
                                                                  abs=0.2)
    assert data.getIntegratedJitter() == pytest.approx(sigma * np.sqrt(1 - 2 * 12e3 / 10e6), rel=0.02)


def test_white_frequency_noise_falls_as_one_over_root_tau_and_twenty_db_per_decade(make_tagger):
    c = 1e-8  # sqrt(s): the ps rounding's white floor is 25 dB below even the top octave
    tagger = make_tagger("ultra")
    oscillator = Osc(tagger, 1e6, coeff_freq_white=c, seed=5)
    stability = TT.FrequencyStability(tagger, oscillator.getChannel(), [100, 1000], average=1)
    phase_noise = TT.PhaseNoise(tagger, oscillator.getChannel())
    acquire(tagger, stability, phase_noise)
    tau = stability.getDataObject().getTau()
    np.testing.assert_allclose(stability.getDataObject().getADEV(), c / np.sqrt(tau), rtol=0.05)
    # L(f) = (f0 c / f)²: -6.02 dB per octave. The top octave sees the edges themselves, a random walk sampled
    # once per period, whose spectrum near Nyquist is (pi f T / sin(pi f T))² above the continuous one. The
    # octaves below come from pair-averaged tags, which (as the method is documented) takes 1 to 3 dB off the
    # upper part of each for a falling spectrum, about the same in every octave well below the tag rate.
    data = phase_noise.getDataObject()
    octaves = data.getPhaseNoise().reshape(-1, 32)[::-1]  # top octave first
    averaged = data.getAveragedSequences().reshape(-1, 32)[::-1, 0]
    offsets = data.getOffset().reshape(-1, 32)[::-1]
    continuous = 20 * np.log10(1e6 * c / offsets)
    sampled = continuous[0] + 20 * np.log10(np.pi * offsets[0] / 1e6 / np.sin(np.pi * offsets[0] / 1e6))
    assert np.abs(octaves[0] - sampled).mean() < 0.3 and abs(np.mean(octaves[0] - sampled)) < 0.15
    per_octave = (octaves - continuous).mean(axis=1)[averaged >= 100]
    assert per_octave.size >= 7
    assert np.all((per_octave[1:] > -2.5) & (per_octave[1:] < 0.5))
    assert np.all((per_octave[3:] > -2.0) & (per_octave[3:] < -0.5)) and np.ptp(per_octave[3:]) < 0.4


def test_random_walk_frequency_noise_rises_as_root_tau(make_tagger):
    c = 1e-5  # sqrt(Hz)
    tagger = make_tagger("ultra")
    oscillator = Osc(tagger, 1e6, coeff_random_drift=c, seed=11)
    stability = TT.FrequencyStability(tagger, oscillator.getChannel(), [100, 1000], average=1)
    acquire(tagger, stability)
    data = stability.getDataObject()
    adev = data.getADEV()
    np.testing.assert_allclose(adev, c * np.sqrt(data.getTau() / 3), rtol=0.25)
    assert adev[1] / adev[0] == pytest.approx(np.sqrt(10), rel=0.25)  # +0.5 on log-log, unlike any white noise


def test_linear_drift_bends_the_edges_as_the_frequency_grows(make_tagger):
    drift = 1e-3  # per second: the frequency grows by 0.1 % per second
    tagger = make_tagger("ultra")
    oscillator = Osc(tagger, 1e6, coeff_linear_drift=drift, seed=1)
    stream = TT.TimeTagStream(tagger, 10**7, [oscillator.getChannel()])
    acquire(tagger, stream, duration_ps=SECOND // 2)
    times = stream.getData().getTimestamps().astype(np.float64) * 1e-12
    n = np.arange(times.size, dtype=np.float64)
    quadratic, linear, _ = np.polyfit(n, times, 2)
    # t_n = (n T) - drift (n T)² / 2 once the first edge's offset is taken into the constant and linear terms.
    assert times.size == pytest.approx(5e5 * (1 + drift / 4), abs=2)
    assert quadratic == pytest.approx(-drift * 1e-12 / 2, rel=0.01)
    assert linear == pytest.approx(1e-6, rel=1e-3)


def test_flicker_bad_arguments_and_a_pause(make_tagger):
    tagger = make_tagger("ultra")
    with pytest.raises(NotImplementedError, match="coeff_freq_flicker: flicker noise is not simulated"):
        Osc(tagger, 1e6, coeff_freq_flicker=1e-12)
    with pytest.raises(ValueError, match="nominal_frequency must be a positive"):
        Osc(tagger, 0)
    with pytest.raises(ValueError, match="coeff_phase_white must be a finite non-negative"):
        Osc(tagger, 1e6, coeff_phase_white=-1e-12)
    oscillator = Osc(tagger, 1e6, base_channel=1, seed=2)  # added to a real input
    rate = TT.Countrate(tagger, [1])
    acquire(tagger, rate, duration_ps=SECOND // 100)
    assert rate.getCountsTotal()[0] == pytest.approx(10_000, abs=2)
    oscillator.stop()
    acquire(tagger, rate, duration_ps=SECOND // 100)  # tag time goes on without it
    assert rate.getCountsTotal()[0] == 0
    oscillator.start()
    acquire(tagger, rate, duration_ps=SECOND // 100)
    assert rate.getCountsTotal()[0] == pytest.approx(10_000, abs=2)  # no burst of the edges it missed
