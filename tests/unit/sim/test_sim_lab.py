"""Lab files: devices, sources and start-up channel settings from TOML, and clear errors for bad ones."""

from __future__ import annotations

import numpy as np
import pytest
from simutil import run_for

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias

LAB = """
[[device]]
serial = "LABTEST01"
model = "Time Tagger 20"

[[device.source]]
kind = "periodic"
channel = 2
frequency_hz = 100000.0

[device.channel.1]
test_signal = true
event_divider = 2

[device.channel.2]
trigger_level_v = 0.25
deadtime_ps = 12000
"""


@pytest.fixture
def lab_file(tmp_path):
    def write(text: str):
        path = tmp_path / "lab.toml"
        path.write_text(text)
        return path

    yield write
    TT.configure()


def test_lab_file_sets_devices_sources_and_channel_settings(lab_file):
    TT.configure(lab_file(LAB), clock="virtual", seed=5)
    assert TT.scanTimeTagger(include_model_name=True) == ["LABTEST01,Time Tagger 20"]
    tagger = TT.createTimeTagger("LABTEST01")
    try:
        assert tagger.getTestSignal(1) and tagger.getEventDivider(1) == 2
        assert tagger.getTriggerLevel(2) == 0.25 and tagger.getDeadtime(2) == 12000
        rate = TT.Countrate(tagger, [1, 2])
        run_for(rate, 10**11)
        np.testing.assert_allclose(rate.getData(), [62.5e6 / 74 / 2, 1e5], rtol=0.01)
        tagger.setEventDivider(1, 1)
        tagger.reset()  # back to the lab's start-up values, not the factory ones
        assert tagger.getEventDivider(1) == 2
    finally:
        TT.freeTimeTagger(tagger)


@pytest.mark.parametrize(("text", "message"), [
    ('[[device]]\nmodel = "Time Tagger 99"', "unknown Time Tagger model 'Time Tagger 99'"),
    ('[[device]]\n[[device.source]]\nkind = "laser"', "kind = one of"),
    ('[[device]]\n[[device.source]]\nkind = "poisson"\nchannel = 12\nrate_hz = 1.0', "channel 12 is outside 1..8"),
    ('[[device]]\n[device.channel.1]\ntrigger_level = 0.3', "unknown settings ['trigger_level']"),
    ("[[device]\n", "not valid TOML"),
])
def test_bad_lab_files_are_rejected_naming_the_problem(lab_file, text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        TT.configure(lab_file(text))


def test_out_of_range_channel_setting_fails_on_open(lab_file):
    TT.configure(lab_file('[[device]]\nserial = "X1"\n[device.channel.3]\ndeadtime_ps = 9000000000'), clock="virtual")
    with pytest.raises(ValueError, match=r"X1: dead time 9000000000 ps exceeds"):
        TT.createTimeTagger()
    assert TT.scanTimeTagger() == ["X1"]  # the failed open does not hold the device


def test_the_example_lab_in_the_docs_opens_and_runs(lab_file):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs/simulator.md").read_text()
    TT.configure(lab_file(re.search(r"```toml\n(.*?)```", text, re.S).group(1)), clock="virtual", seed=2)
    assert TT.scanTimeTagger() == ["2138000SIM", "1740000SIM"]
    tagger = TT.createTimeTagger("2138000SIM")
    try:
        assert tagger.getTriggerLevel(5) == 0.4 and tagger.getEventDivider(8) == 4
        rate = TT.Countrate(tagger, [5, 8])
        run_for(rate, 10**11)
        np.testing.assert_allclose(rate.getData(), [10e6, 200e3], rtol=0.01)
    finally:
        TT.freeTimeTagger(tagger)


TILED_LAB = """
[[device]]
serial = "TILED01"
model = "Time Tagger Ultra"

[[device.source]]
kind = "tiled"
period_ps = 10_000_000_000          # 10 ms, repeated
of = { kind = "photon_pairs", channel_a = 1, channel_b = 2, pair_rate_hz = 2e6, delay_ps = 2500, jitter_b_ps = 100.0 }

[[device.source]]
kind = "tiled"
period_ps = 10_000_000_000
of = { kind = "poisson", channel = 3, rate_hz = 3e6 }

[[device.source]]
kind = "tiled"
period_ps = 10_000_000_000
of = { kind = "poisson", channel = 4, rate_hz = 3e6 }
"""


def test_a_tiled_source_repeats_its_inner_source_s_period_exactly(lab_file):
    TT.configure(lab_file(TILED_LAB), clock="virtual", seed=3)
    tagger = TT.createTimeTagger()
    try:
        tagger.setInputDelay(2, 0)
        stream = TT.TimeTagStream(tagger, 10**8, [1, 2, 3, 4])
        pairs = TT.Correlation(tagger, 2, 1, binwidth=100, n_bins=200)  # +-10 ns
        rate = TT.Countrate(tagger, [1, 2, 3, 4])
        for m in (stream, pairs, rate):
            m.stop()
            m.clear()
        group = [stream, pairs, rate]
        for m in group:
            m.startFor(35_000_000_000)  # 3.5 periods: the joins between periods are inside
        for m in group:
            assert m.waitUntilFinished(60_000)
        np.testing.assert_allclose(rate.getData(), [2e6, 2e6, 3e6, 3e6], rtol=0.02)
        # The inner source's statistics: pairs 2.5 ns apart, spread by the arm's jitter and the tagger's.
        index, data = pairs.getIndex(), pairs.getData()
        assert data.sum() > 0.9 * 2e6 * 0.035 and abs(index[data.argmax()] - 2500) <= 200
        buffer = stream.getData()
        stamps, chans = buffer.getTimestamps(), buffer.getChannels()
        assert not buffer.hasOverflows
        period = 10_000_000_000
        for ch in (1, 3, 4):
            times = stamps[chans == ch]
            first = times[(times >= times[0]) & (times < times[0] + period)]
            second = times[(times >= times[0] + period) & (times < times[0] + 2 * period)]
            # The same tags one period later (the tagger's own jitter, tens of ps, is drawn afresh per tag, so
            # a tag at the very edge of the period may fall on the other side of it, and of two tags closer than
            # the dead time either may be the one kept).
            assert abs(first.size - second.size) <= 2 and first.size > 15_000
            later = second - period
            nearest = np.clip(np.searchsorted(later, first[5:-5]), 1, later.size - 1)
            gap = np.minimum(np.abs(later[nearest] - first[5:-5]), np.abs(later[nearest - 1] - first[5:-5]))
            assert np.mean(gap < 500) > 0.999  # the rest: close pairs where dead time kept the other tag
        # Each source has its own pattern (from the device's generator): no two channels repeat each other.
        three, four = stamps[chans == 3], stamps[chans == 4]
        nearest = np.clip(np.searchsorted(four, three), 1, four.size - 1)
        apart = np.minimum(np.abs(four[nearest] - three), np.abs(four[nearest - 1] - three))
        assert np.median(apart) > 10_000  # independent 3 MHz streams: ~100 ns; one pattern twice: ~jitter
    finally:
        TT.freeTimeTagger(tagger)


@pytest.mark.parametrize(("text", "message"), [
    ('kind = "tiled"\nperiod_ps = 1000', "a tiled source needs of = "),
    ('kind = "tiled"\nperiod_ps = 0\nof = { kind = "poisson", channel = 1, rate_hz = 1.0 }',
     "period_ps must be positive"),
    ('kind = "tiled"\nof = { kind = "tiled", of = { kind = "poisson", channel = 1, rate_hz = 1.0 } }',
     "cannot tile another tiled source"),
    ('kind = "tiled"\nof = { kind = "poisson", channel = 12, rate_hz = 1.0 }', "channel 12 is outside 1..8"),
])
def test_bad_tiled_sources_are_rejected_naming_the_problem(lab_file, text, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        TT.configure(lab_file(f'[[device]]\n[[device.source]]\n{text}\n'))
