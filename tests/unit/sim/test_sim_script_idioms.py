"""Idioms that the vendor's published example scripts use, found by running them unchanged on the simulator."""

from __future__ import annotations

import numpy as np
import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias

SECOND = 10**12


def test_with_blocks_free_the_tagger_and_release_measurements():
    TT.configure(clock="virtual", seed=2)
    try:
        with TT.createTimeTagger() as tagger:  # the vendor's README example
            tagger.setTestSignal([1, 2], True)
            with TT.Correlation(tagger=tagger, channel_1=1, channel_2=2) as corr:
                corr.startFor(SECOND // 100)
                assert corr.waitUntilFinished(60_000)
                assert corr.getData().sum() > 0
            with pytest.raises(RuntimeError, match="has been freed"):
                corr.start()
            serial = tagger.getSerial()
        with pytest.raises(RuntimeError, match="has been freed"):
            TT.Countrate(tagger, [1])
        again = TT.createTimeTagger(serial)  # the with block gave the device back
        TT.freeTimeTagger(again)
    finally:
        TT.configure()


def test_configuration_is_a_dict_with_devices_and_measurements(make_tagger):
    tagger = make_tagger("ultra")
    rate = TT.Countrate(tagger, [1, 2])
    config = tagger.getConfiguration()
    assert config["devices"][0]["model"] == "Time Tagger Ultra" == tagger.getModel()
    assert config["devices"][0]["serial"] == tagger.getSerial()
    assert rate.getConfiguration() == {"name": "Countrate", "channels": [1, 2]}
    assert config["measurements"] == [rate.getConfiguration()]


def test_virtual_tagger_plays_the_test_signal_without_a_file():
    tagger = TT.createTimeTaggerVirtual()
    try:
        tagger.setTestSignal([1, 2], True)
        tagger.setInputDelay(2, 2000)
        assert tagger.getTestSignal(1) and not tagger.getTestSignal(3)
        with TT.SynchronizedMeasurements(tagger) as group:
            rate = TT.Countrate(group.getTagger(), [1, 2, 3])
            corr = TT.Correlation(group.getTagger(), 2, 1, binwidth=100, n_bins=100)
            group.startFor(SECOND // 10)
            assert group.waitUntilFinished(60_000)
        # The Ultra's test signal (800 kHz) on both channels, nothing on 3; channel 2 lags by its 2 ns delay.
        np.testing.assert_allclose(rate.getData(), [800e3, 800e3, 0], rtol=1e-3)
        assert corr.getIndex()[corr.getData().argmax()] == 2050
        tagger.setTestSignal([1, 2], False)
        assert not tagger._stage.busy()  # the endless source is gone: the replay engine may rest
    finally:
        TT.freeTimeTagger(tagger)


def test_leaving_a_synchronized_with_block_stops_its_measurements(make_tagger):
    tagger = make_tagger("ultra")
    with TT.SynchronizedMeasurements(tagger) as group:
        rate = TT.Countrate(group.getTagger(), [1])
        group.start()
        assert rate.isRunning()
    assert not rate.isRunning()
