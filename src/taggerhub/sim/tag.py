"""``Tag``: one event of the tag stream, as the vendor's C++ ``Tag`` struct is exposed to Python.

Python code meets the stream as arrays (``TimeTagStreamBuffer``, ``CustomMeasurement``); the vendor's
docstrings point scripts at ``Tag``'s type constants to read ``getEventTypes()`` (``types ==
TT.Tag.Type_OverflowBegin``), which is what this class is mostly for. Its three constructors are the
vendor's: ``Tag()``, ``Tag(ts, ch, type=TimeTag)`` and ``Tag(type, reserved, missed_events, ch, ts)``.
"""

from __future__ import annotations

from .enums import TagType


class Tag:
    """A single event on a channel: type, missed events, channel and time in ps."""

    Type_TimeTag = int(TagType.TimeTag)
    Type_Error = int(TagType.Error)
    Type_OverflowBegin = int(TagType.OverflowBegin)
    Type_OverflowEnd = int(TagType.OverflowEnd)
    Type_MissedEvents = int(TagType.MissedEvents)

    __slots__ = ("channel", "missed_events", "reserved", "time", "type")

    def __init__(self, *args: int, **kwargs: int):
        if len(args) + len(kwargs) > 3 or "reserved" in kwargs or "missed_events" in kwargs:
            values = _bind(("type", "reserved", "missed_events", "ch", "ts"), args, kwargs, {})
        else:
            values = _bind(("ts", "ch", "type"), args, kwargs, {"ts": 0, "ch": 0, "type": self.Type_TimeTag})
            values.setdefault("reserved", 0)
            values.setdefault("missed_events", 0)
        self.type = int(TagType(int(values["type"])))  # an unknown type code is refused, naming the valid ones
        self.reserved = int(values["reserved"])
        self.missed_events = int(values["missed_events"])
        if not 0 <= self.missed_events < 1 << 16:
            raise ValueError(f"missed_events must fit 16 bits (0 .. 65535), got {self.missed_events}")
        self.channel = int(values["ch"])
        self.time = int(values["ts"])

    def __repr__(self) -> str:
        return (f"Tag(type={TagType(self.type).name}, missed_events={self.missed_events}, channel={self.channel}, "
                f"time={self.time})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tag):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable, as the vendor's


def _bind(names: tuple[str, ...], args: tuple, kwargs: dict, defaults: dict) -> dict:
    """Positional and keyword arguments of one overload, or a TypeError naming the vendor's overloads."""
    if len(args) > len(names) or set(kwargs) - set(names):
        raise TypeError("Tag() takes (), (ts, ch, type=TimeTag) or (type, reserved, missed_events, ch, ts)")
    values = dict(defaults)
    values.update(zip(names, args, strict=False))
    for name, value in kwargs.items():
        if name in values and name in names[: len(args)]:
            raise TypeError(f"Tag() got multiple values for {name!r}")
        values[name] = value
    missing = [n for n in names if n not in values]
    if missing:
        raise TypeError(f"Tag() is missing {', '.join(missing)} (overloads: (), (ts, ch, type=TimeTag), "
                        "(type, reserved, missed_events, ch, ts))")
    return values
