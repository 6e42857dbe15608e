"""Model-specific setters accept or raise per model as the vendor library does.

The rules come from the vendor docstrings ("Method is only available for the *Time Tagger X*", "not
available for the *Time Tagger 20*") and the exception types and messages in libTimeTagger 2.22.6
(std::runtime_error -> RuntimeError, std::invalid_argument -> ValueError; an out-of-range trigger level
is clamped with a logged warning, not raised).
"""

from __future__ import annotations

import numpy as np
import pytest
from simutil import run_for

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.signals import PeriodicSource

MODELS = ["ultra", "x", "20"]


@pytest.mark.parametrize("model", MODELS)
def test_input_impedance_and_hysteresis_exist_on_the_time_tagger_x_only(make_tagger, model):
    tagger = make_tagger(model)
    calls = {
        "High impedance mode is only supported": [lambda: tagger.setInputImpedanceHigh(1, True),
                                                  lambda: tagger.setInputImpedanceHigh(1, False)],
        "Configurable hysteresis is only supported": [lambda: tagger.setInputHysteresis(1, 70)],
        "This feature is only supported on the Time Tagger X": [lambda: tagger.getInputImpedanceHigh(1),
                                                                lambda: tagger.getInputHysteresis(1)],
    }
    if model == "x":
        assert tagger.getInputImpedanceHigh(1) is False and tagger.getInputHysteresis(1) == 20
        tagger.setInputImpedanceHigh(1, True)
        tagger.setInputHysteresis(1, 70)
        assert tagger.getInputImpedanceHigh(1) is True and tagger.getInputHysteresis(1) == 70
        assert tagger.getInputImpedanceHigh(2) is False  # per input
        with pytest.raises(ValueError, match="1, 20 or 70"):
            tagger.setInputHysteresis(1, 5)
        return
    for message, funcs in calls.items():
        for call in funcs:
            with pytest.raises(RuntimeError, match=message):
                call()


@pytest.mark.parametrize(("model", "limit_ps"), [("ultra", 2_000_000), ("x", 2_500_000), ("20", None)])
def test_hardware_delay_range_per_model_and_none_on_the_time_tagger_20(make_tagger, model, limit_ps):
    tagger = make_tagger(model, [PeriodicSource(channel=c, frequency_hz=1e6) for c in (1, 2)])
    if limit_ps is None:
        for call in (lambda: tagger.getDelayHardwareRange(1), lambda: tagger.getDelayHardware(1),
                     lambda: tagger.setDelayHardware(1, 1000)):
            with pytest.raises(ValueError, match="Hardware input delays are not supported on the Time Tagger 20"):
                call()
        tagger.setInputDelay(2, 3000)  # the convenience call falls back to the software delay
        assert tagger.getDelaySoftware(2) == 3000
    else:
        assert tagger.getDelayHardwareRange(1) == [-limit_ps, limit_ps]
        tagger.setInputDelay(2, limit_ps)  # still on board at the limit
        assert tagger.getDelayHardware(2) == limit_ps and tagger.getDelaySoftware(2) == 0
        with pytest.raises(ValueError, match="hardware delay"):
            tagger.setDelayHardware(1, limit_ps + 1)
        tagger.setInputDelay(2, 3000)
    corr = TT.Correlation(tagger, 2, 1, binwidth=100, n_bins=200)  # either way the delay acts on the tags
    run_for(corr, 10**10)
    assert abs(corr.getIndex()[corr.getData().argmax()] - 3000) <= 100


@pytest.mark.parametrize("model", MODELS)
def test_analog_test_signal_source_and_clock_trim_exist_on_the_time_tagger_x_only(make_tagger, model):
    tagger = make_tagger(model)
    tagger.setTestSignalSource(TT.TestSignalSource.Digital)  # the default, accepted everywhere
    if model == "x":
        tagger.setTestSignalSource(TT.TestSignalSource.Analog)
        assert tagger.getTestSignalSource() == TT.TestSignalSource.Analog
        tagger.setInternalClockTrim(-12.5)
        assert tagger.getInternalClockTrim() == -12.5
        with pytest.raises(ValueError, match="50 ppm"):
            tagger.setInternalClockTrim(60)
        return
    with pytest.raises(RuntimeError, match="Analog test signal source is only supported on the Time Tagger X"):
        tagger.setTestSignalSource(TT.TestSignalSource.Analog)
    with pytest.raises(RuntimeError, match="only supported on the Time Tagger X series with hardware revision"):
        tagger.setInternalClockTrim(1.0)


@pytest.mark.parametrize(("model", "low", "high"), [("ultra", -2.5, 2.5), ("x", -2.0, 2.0), ("20", 0.0, 2.5)])
def test_trigger_level_out_of_range_is_clamped_with_the_vendors_warning(make_tagger, caplog, model, low, high):
    tagger = make_tagger(model)
    assert tagger.getTriggerLevelRange(1) == [low, high]
    with caplog.at_level("WARNING", logger="taggerhub.sim"):
        tagger.setTriggerLevel(1, 7.0)
        assert tagger.getTriggerLevel(1) == high
        tagger.setTriggerLevel(1, -7.0)
        assert tagger.getTriggerLevel(1) == low
    assert f"Setting to max device value: {high:.3f} V." in caplog.text
    assert f"Setting to min device value: {low:.3f} V." in caplog.text


def test_highres_mode_is_refused_on_the_time_tagger_20(make_tagger):
    make_tagger("20")  # configures the lab with one Time Tagger 20 (and opens it)
    TT.freeAllTimeTagger()
    with pytest.raises(RuntimeError, match="HighRes mode is not supported on the Time Tagger 20"):
        TT.createTimeTagger(resolution=TT.Resolution.HighResA)
    tagger = TT.createTimeTagger(resolution=TT.Resolution.Standard)
    try:
        np.testing.assert_equal(tagger.getModel(), "Time Tagger 20")
    finally:
        TT.freeTimeTagger(tagger)
