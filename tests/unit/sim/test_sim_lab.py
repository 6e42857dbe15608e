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
