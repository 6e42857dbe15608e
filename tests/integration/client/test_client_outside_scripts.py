"""Idioms of lab scripts written for the vendor's module, found by running them unchanged through a server
(docs/trials.md): ``import TimeTagger`` gives the client's proxy, as a script's shim would arrange it."""

from __future__ import annotations

import importlib
import inspect
import sys
import textwrap
from types import ModuleType

import numpy as np
import pytest

from taggerhub.testing import ServerContext

SECOND = 10**12

# The shape of the vendor's Custom-Measurements examples: the tagger annotated with the module's class
# (evaluated when the class is defined), tags told apart by the module's TagType inside process().
VENDOR_STYLE = textwrap.dedent('''
    import numpy as np
    import TimeTagger

    class TimeTagCounter(TimeTagger.CustomMeasurement):
        def __init__(self, tagger: TimeTagger.TimeTaggerBase, channel: int):
            super().__init__(tagger)
            self.channel = channel
            self.register_channel(channel)
            self.clear_impl()
            self.finalize_init()

        def clear_impl(self):
            self.count = 0

        def getData(self):
            with self.mutex:
                return self.count

        def process(self, incoming_tags, begin_time, end_time):
            wanted = (incoming_tags["type"] == TimeTagger.TagType.TimeTag) & (incoming_tags["channel"] == self.channel)
            self.count += int(np.count_nonzero(wanted))
''')


@pytest.fixture
def vendor_module(tmp_path, monkeypatch):
    """``import TimeTagger`` is a live server's library proxy; returns (proxy, the script module)."""
    with ServerContext() as ctx:
        TT = ctx.proxy()
        (tmp_path / "vendor_style_counter.py").write_text(VENDOR_STYLE)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setitem(sys.modules, "TimeTagger", TT)
        monkeypatch.delitem(sys.modules, "vendor_style_counter", raising=False)
        yield TT, importlib.import_module("vendor_style_counter")


def test_tagger_classes_annotate_and_tell_taggers_apart(vendor_module) -> None:
    TT, script = vendor_module
    assert inspect.signature(script.TimeTagCounter.__init__).parameters["tagger"].annotation is TT.TimeTaggerBase
    tagger = TT.createTimeTagger()
    virtual = TT.createTimeTaggerVirtual()
    synced = TT.SynchronizedMeasurements(tagger).getTagger()
    kinds = {name: getattr(TT, name) for name in ("TimeTaggerBase", "TimeTagger", "TimeTaggerVirtual")}
    assert {n for n, k in kinds.items() if isinstance(tagger, k)} == {"TimeTaggerBase", "TimeTagger"}
    assert {n for n, k in kinds.items() if isinstance(virtual, k)} == {"TimeTaggerBase", "TimeTaggerVirtual"}
    assert {n for n, k in kinds.items() if isinstance(synced, k)} == {"TimeTaggerBase"}
    assert not isinstance(TT.Countrate(tagger, [1]), TT.TimeTaggerBase)  # a measurement is no tagger
    TT.freeTimeTagger(virtual)


def test_the_library_proxy_is_a_module_and_its_tag_types_count_the_test_signal(vendor_module) -> None:
    TT, script = vendor_module
    # numba types a global only as a module (else "Untyped global name 'TimeTagger'"); inspect agrees
    assert isinstance(TT, ModuleType) and inspect.ismodule(TT) and TT.__name__ == "TimeTagger"
    assert importlib.import_module("TimeTagger") is TT
    assert TT.TagType.TimeTag == 0 and TT.CHANNEL_UNUSED == TT.CHANNEL_UNUSED  # attributes still resolve
    tagger = TT.createTimeTagger()
    tagger.setTestSignal(1, True)
    tagger.setEventDivider(1, 100)  # 8 kHz: a rate the tag stream carries whole on a busy test machine
    counter = script.TimeTagCounter(tagger, 1)
    counter.startFor(SECOND // 2)
    assert counter.waitUntilFinished(60_000)
    np.testing.assert_allclose(counter.getData(), 4_000, atol=1)  # 8 kHz for half a second
