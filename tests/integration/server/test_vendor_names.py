"""Names and keywords real scripts use reach the served library: constants, vendor keywords, reads for observers."""

from __future__ import annotations

import pytest

from taggerhub import client
from taggerhub.errors import AccessDenied


def test_module_constants_are_attributes_of_the_remote_library(start_hub) -> None:
    TT = start_hub().proxy()
    assert TT.CHANNEL_UNUSED == -134217728
    assert TT.TT_CHANNEL_FALLING_EDGES == 2 and TT.TT_CHANNEL_RISING_EDGES == 1
    tagger = TT.createTimeTagger()
    assert tagger.getChannelList(TT.TT_CHANNEL_RISING_EDGES)[:2] == [1, 2]
    with pytest.raises(AttributeError, match="NO_SUCH_NAME"):
        _ = TT.NO_SUCH_NAME


def test_library_calls_take_the_vendors_parameter_names(start_hub) -> None:
    TT = start_hub().proxy()
    tagger = TT.createTimeTagger()
    tagger.setTestSignal(1, True)
    rate = TT.Countrate(tagger=tagger, channels=[1])
    rate.startFor(capture_duration=int(1e11))
    assert rate.waitUntilFinished(timeout=10_000)
    assert rate.getData()[0] > 0
    assert TT.freeTimeTagger(tagger=tagger) is True


def test_observers_may_make_the_reads_real_scripts_make(start_auth_server) -> None:
    server = start_auth_server()
    TT = client.createProxy(port=server.port, token=server.tokens["oscar"])
    tagger = TT.createTimeTagger()
    assert TT.getTimeTaggerModel(tagger.getSerial()) == tagger.getModel()
    assert TT.getTimeTaggerChannelNumberScheme() in (0, 1, 2)
    counts = TT.TimeDifferences(tagger, 1, 2, n_bins=10, binwidth=100)
    assert counts.ready() in (True, False)
    with pytest.raises(AccessDenied, match="needs role operator"):
        tagger.setTestSignal(1, True)


def test_free_all_taggers_ends_only_the_callers_use_of_the_shared_device(start_auth_server) -> None:
    server = start_auth_server()
    mine = client.createProxy(port=server.port, token=server.tokens["otto"])
    theirs = client.createProxy(port=server.port, token=server.tokens["olga"])
    my_tagger, their_tagger = mine.createTimeTagger(), theirs.createTimeTagger()
    assert my_tagger.getSerial() == their_tagger.getSerial()  # one shared device
    assert mine.freeAllTimeTagger() is None
    assert their_tagger.getSerial()  # still open for the other client
    assert len(server.server.hub.devices.adapters()) == 1
    assert theirs.freeAllTimeTagger() is None
    assert server.server.hub.devices.adapters() == []  # the last user gone: the device closed
