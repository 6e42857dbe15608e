"""Fixtures that open simulated taggers on a virtual clock with a fixed seed, and free them after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias
from taggerhub.sim.lab import DeviceSpec
from taggerhub.sim.models import model_by_name
from taggerhub.sim.signals import SignalSource


@pytest.fixture
def make_tagger() -> Iterator[Callable[..., TT.TimeTagger]]:
    opened: list[TT.TimeTagger] = []

    def make(model: str = "ultra", sources: list[SignalSource] | None = None, seed: int = 1234) -> TT.TimeTagger:
        spec = model_by_name(model)
        TT.configure(devices=[DeviceSpec(serial=f"{spec.serial_prefix}TEST", model=spec, sources=sources or [])],
                     clock="virtual", seed=seed)
        tagger = TT.createTimeTagger()
        opened.append(tagger)
        return tagger

    yield make
    for tagger in opened:
        TT.freeTimeTagger(tagger)
    TT.configure()  # back to the default lab for whatever runs next in this process
