"""Module-level functions of the vendor library that the demo scripts call: freeAllTimeTagger."""

from __future__ import annotations

import inspect

import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.lab import DeviceSpec
from taggerhub.sim.models import model_by_name
from taggerhub.sim.signals import PoissonSource


@pytest.fixture
def two_devices():
    TT.configure(devices=[
        DeviceSpec(serial="A", model=model_by_name("ultra"), sources=[PoissonSource(channel=1, rate_hz=1e5)]),
        DeviceSpec(serial="B", model=model_by_name("20")),
    ], clock="virtual", seed=3)
    yield
    TT.freeAllTimeTagger()
    TT.configure()


def test_free_all_takes_no_arguments_and_returns_none_like_the_vendor():
    assert list(inspect.signature(TT.freeAllTimeTagger).parameters) == []
    assert "freeAllTimeTagger" in TT.__all__
    from taggerhub.sim import createTimeTagger, freeAllTimeTagger  # the demos' first line  # noqa: F401


def test_free_all_closes_every_open_tagger_and_stops_their_measurements(two_devices):
    a, b = TT.createTimeTagger("A"), TT.createTimeTagger("B")
    assert TT.scanTimeTagger() == []
    rate = TT.Countrate(a, [1])
    assert rate.isRunning()
    assert TT.freeAllTimeTagger() is None
    assert sorted(TT.scanTimeTagger()) == ["A", "B"]  # both devices are free again
    assert not rate.isRunning()
    for tagger in (a, b):
        with pytest.raises(RuntimeError, match="freed"):
            TT.Countrate(tagger, [1])
        with pytest.raises(RuntimeError, match="freed"):
            tagger.sync()
    assert TT.freeTimeTagger(a) is False  # already closed
    again = TT.createTimeTagger("A")  # the serial can be opened anew
    assert again.getSerial() == "A"


def test_free_all_with_nothing_open_does_nothing(two_devices):
    TT.freeAllTimeTagger()
    assert sorted(TT.scanTimeTagger()) == ["A", "B"]
