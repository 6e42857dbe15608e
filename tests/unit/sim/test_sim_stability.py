"""FrequencyStability and PulsePerSecondMonitor on simulated clocks whose jitter and offsets are known."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.models import model_by_name
from taggerhub.sim.signals import PeriodicSource

SECOND = 10**12
ULTRA_JITTER_PS = model_by_name("ultra").jitter_rms_ps


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def test_allan_deviation_of_a_jittery_clock_is_what_its_white_phase_noise_implies(make_tagger):
    source_jitter, frequency, average = 100.0, 1e6, 10
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=frequency, jitter_ps=source_jitter)])
    steps = [1, 2, 5, 10, 20, 50, 100]
    stability = TT.FrequencyStability(tagger, 1, steps, average=average, trace_len=500)
    stability.startFor(2 * SECOND)
    assert stability.waitUntilFinished(60_000)
    data = stability.getDataObject()
    tau = data.getTau()
    np.testing.assert_allclose(tau, np.array(steps) * average / frequency, rtol=1e-9)
    # White phase noise: the timestamps scatter by sigma, averaging `average` of them divides it by sqrt(average).
    sigma_s = np.hypot(source_jitter, ULTRA_JITTER_PS) / np.sqrt(average) * 1e-12
    # The docstring: the scaled ADEV and HDEV of white phase noise equal the averaged timestamps' deviation...
    np.testing.assert_allclose(data.getADEVScaled(), sigma_s, rtol=0.03)
    np.testing.assert_allclose(data.getHDEVScaled(), sigma_s, rtol=0.03)
    np.testing.assert_allclose(data.getADEV(), np.sqrt(3) * sigma_s / tau, rtol=0.03)
    # ... and the log-log slopes are -1 (ADEV), -1.5 (MDEV) and -0.5 (TDEV) for white phase noise.
    big = tau >= tau[3]
    assert loglog_slope(tau, data.getADEV()) == pytest.approx(-1.0, abs=0.03)
    assert loglog_slope(tau[big], data.getMDEV()[big]) == pytest.approx(-1.5, abs=0.05)
    assert loglog_slope(tau[big], data.getTDEV()[big]) == pytest.approx(-0.5, abs=0.05)
    np.testing.assert_allclose(data.getSTDD(), np.sqrt(2) * sigma_s, rtol=0.03)  # spans of two independent samples

    phase, freq = data.getTracePhase(), data.getTraceFrequency()
    assert phase.size == 500 and freq.size == 500 and data.getTraceIndex().size == 500
    assert np.std(phase) == pytest.approx(sigma_s, rel=0.15)
    assert abs(freq.mean()) < 1e-9
    np.testing.assert_allclose(data.getTraceFrequencyAbsolute(frequency).mean(), 0.0, atol=0.05)  # ~0.01 Hz of noise


def test_trace_frequency_shows_a_clock_offset_and_short_runs_give_nan(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1e6 + 250.0)])
    stability = TT.FrequencyStability(tagger, 1, [1, 10, 10**6], average=100, trace_len=50)
    stability.startFor(SECOND // 10)
    assert stability.waitUntilFinished(60_000)
    data = stability.getDataObject()
    np.testing.assert_allclose(data.getTraceFrequencyAbsolute(1e6), 250.0, atol=0.5)
    np.testing.assert_allclose(data.getTraceFrequencyAbsolute(), 1e6 + 250.0, atol=0.5)
    adev = data.getADEV()
    assert np.isfinite(adev[:2]).all() and np.isnan(adev[2])  # 10**6 steps need more than 0.1 s of samples
    with pytest.raises(ValueError, match="average must be positive"):
        TT.FrequencyStability(tagger, 1, [1], average=0)


def test_pulse_per_second_monitor_offsets_missing_pulses_and_csv(make_tagger, tmp_path):
    tagger = make_tagger("ultra", [
        PeriodicSource(channel=1, frequency_hz=1.0, phase_ps=10**9),  # the reference, 1 ms into each second
        PeriodicSource(channel=2, frequency_hz=1.0, phase_ps=10**9 + 250_000),  # 250 ns late
        PeriodicSource(channel=3, frequency_hz=1.0, phase_ps=10**9 - 100_000, jitter_ps=1000.0),  # 100 ns early
        PeriodicSource(channel=4, frequency_hz=0.5, phase_ps=10**9 + 5_000),  # every other second only
    ])
    path = tmp_path / "pps.csv"
    before = time.time()
    pps = TT.PulsePerSecondMonitor(tagger, 1, [2, 3, 4], filename=str(path))
    pps.startFor(10 * SECOND)
    assert pps.waitUntilFinished(60_000)
    data = pps.getDataObject()
    indices = data.getIndices()
    assert indices.tolist() == list(range(indices.size)) and indices.size >= 9  # the last pulse waits for its window
    offsets = data.getSignalOffsets()
    assert offsets.shape == (indices.size, 3)
    np.testing.assert_allclose(offsets[:, 0], 250e-9, atol=100e-12)
    np.testing.assert_allclose(offsets[:, 1], -100e-9, atol=5e-9)
    assert 0.5e-9 < np.std(offsets[:, 1]) < 2e-9  # its 1 ns jitter
    fourth = offsets[:, 2]
    seen = ~np.isnan(fourth)
    assert (seen[:-1] != seen[1:]).all()  # present on every other reference pulse
    np.testing.assert_allclose(fourth[seen], 5e-9, atol=100e-12)
    np.testing.assert_array_equal(data.getStatus(), ~np.isnan(fourth))
    ref = data.getReferenceOffsets()
    assert ref[0] == 0 and np.abs(ref[1:]).max() < 100e-12  # a perfect reference, up to the tagger's jitter
    utc = data.getUtcSeconds()
    assert (utc >= before - 1).all() and (np.diff(utc) >= 0).all()
    assert data.getUtcDates()[0].startswith(time.strftime("%Y-", time.gmtime(utc[0])))
    rows = list(csv.reader(path.open()))
    # The file is a log: pulses finished before startFor's clear (the monitor starts on creation) stay in it.
    run = rows[-indices.size:]
    assert rows[0][0] == "index" and len(rows) >= indices.size + 1
    assert [int(r[0]) for r in run] == indices.tolist()
    assert float(run[0][3]) == pytest.approx(250e-9, abs=100e-12)
    assert pps.getDataObject(remove=True).getIndices().size == indices.size
    assert pps.getDataObject().getIndices().size == 0


def test_pulse_per_second_monitor_counts_missed_reference_pulses(make_tagger):
    tagger = make_tagger("ultra", [PeriodicSource(channel=1, frequency_hz=1.0, phase_ps=10**9),
                                   PeriodicSource(channel=2, frequency_hz=1.0, phase_ps=10**9 + 1000)])
    tagger.setEventDivider(1, 3)  # the reference loses two pulses of every three
    pps = TT.PulsePerSecondMonitor(tagger, 1, [2])
    pps.startFor(10 * SECOND)
    assert pps.waitUntilFinished(60_000)
    data = pps.getDataObject()
    assert data.getIndices().tolist()[:3] == [0, 3, 6]  # "incremented by the number of missed pulses"
    ref = data.getReferenceOffsets()
    assert ref[0] == 0 and np.isnan(ref[1:]).all()
    assert not data.getStatus()[1:].any()
