"""TT.Tag: the vendor's three constructors, and its type constants reading a stream's event types."""

from __future__ import annotations

from pathlib import Path

import pytest

import taggerhub.sim as TT  # noqa: N812 - the vendor module's usual alias

SECOND = 10**12
USB_LAB = """
[[device]]
serial = "TT20USB"
model = "Time Tagger 20"

[[device.source]]
kind = "periodic"
channel = 2
frequency_hz = 12000000.0
"""


def test_constructors_fields_and_constants_are_the_vendors():
    # The vendor's values: Tag().type .. and Tag.Type_TimeTag .. Type_MissedEvents are 0 .. 4.
    assert [TT.Tag.Type_TimeTag, TT.Tag.Type_Error, TT.Tag.Type_OverflowBegin, TT.Tag.Type_OverflowEnd,
            TT.Tag.Type_MissedEvents] == [0, 1, 2, 3, 4] == [int(t) for t in TT.TagType]
    empty = TT.Tag()
    assert (empty.type, empty.reserved, empty.missed_events, empty.channel, empty.time) == (0, 0, 0, 0, 0)
    short = TT.Tag(1_000_000, 3)
    assert (short.time, short.channel, short.type) == (1_000_000, 3, TT.Tag.Type_TimeTag)
    assert TT.Tag(5, -2, TT.Tag.Type_OverflowBegin).type == TT.TagType.OverflowBegin
    full = TT.Tag(TT.Tag.Type_MissedEvents, 0, 17, 4, 123)
    assert (full.type, full.missed_events, full.channel, full.time) == (4, 17, 4, 123)
    assert full == TT.Tag(type=4, reserved=0, missed_events=17, ch=4, ts=123) != short
    full.time += 5  # fields are writable, as the vendor's
    assert full.time == 128 and "MissedEvents" in repr(full)
    with pytest.raises(TypeError, match="overloads"):
        TT.Tag(1, 2, 3, 4)
    with pytest.raises(ValueError, match="is not a valid TagType"):
        TT.Tag(0, 1, type=9)
    with pytest.raises(ValueError, match="16 bits"):
        TT.Tag(TT.Tag.Type_MissedEvents, 0, 70_000, 1, 0)


def test_type_constants_pick_the_overflow_marks_out_of_a_stream(tmp_path: Path):
    """A Time Tagger 20 carries 9 M tags/s: a 12 MHz input overflows, and the marks are found as the
    vendor's docstring of getEventTypes suggests, by comparing with Tag's type constants."""
    lab = tmp_path / "lab.toml"
    lab.write_text(USB_LAB)
    TT.configure(lab, clock="virtual")
    try:
        tagger = TT.createTimeTagger()
        stream = TT.TimeTagStream(tagger, 10**8, [2])
        stream.startFor(SECOND // 20)
        assert stream.waitUntilFinished(60_000)
        data = stream.getData()
        types, missed = data.getEventTypes(), data.getMissedEvents()
        begins = int((types == TT.Tag.Type_OverflowBegin).sum())
        assert begins == int((types == TT.Tag.Type_OverflowEnd).sum()) >= 1
        delivered = int((types == TT.Tag.Type_TimeTag).sum())
        lost = int(missed[types == TT.Tag.Type_MissedEvents].sum())
        assert delivered + lost == pytest.approx(0.6e6, rel=0.01)  # 12 MHz for 50 ms: every event tagged or counted
        assert delivered == pytest.approx(0.45e6, rel=0.02)  # what 9 M tags/s lets through
        TT.freeTimeTagger(tagger)
    finally:
        TT.configure()
