"""Enums and constants of the vendor library, with the same names, types and values."""

from __future__ import annotations

import enum

CHANNEL_UNUSED = -134217728
TT_CHANNEL_RISING_EDGES = 1
TT_CHANNEL_FALLING_EDGES = 2
TT_CHANNEL_RISING_AND_FALLING_EDGES = 0
UNKNOWN = 0
HIGH = 1
LOW = 2
TT_CHANNEL_NUMBER_SCHEME_AUTO = 0
TT_CHANNEL_NUMBER_SCHEME_ZERO = 1
TT_CHANNEL_NUMBER_SCHEME_ONE = 2


class Resolution(enum.IntEnum):
    Standard = 0
    HighResA = 1
    HighResB = 2
    HighResC = 3


class ChannelEdge(enum.IntFlag):
    All = 0
    Rising = 1
    Falling = 2
    HighResAll = 4
    StandardAll = 8
    HighResRising = 5
    HighResFalling = 6
    StandardRising = 9
    StandardFalling = 10


class CoincidenceTimestamp(enum.IntEnum):
    Last = 0
    Average = 1
    First = 2
    ListedFirst = 3


class GatedChannelInitial(enum.IntEnum):
    Closed = 0
    Open = 1


class TagType(enum.IntEnum):
    TimeTag = 0
    Error = 1
    OverflowBegin = 2
    OverflowEnd = 3
    MissedEvents = 4


class TestSignalSource(enum.IntEnum):
    Digital = 0
    Analog = 1


class AccessMode(enum.IntEnum):
    Listen = 0
    SynchronousListen = 1
    Control = 2
    SynchronousControl = 3


class FrontendType(enum.IntEnum):
    Undefined = 0
    WebApp = 1
    Firefly = 2
    Pyro5RPC = 3
    UserFrontend = 4


# SWIG also exposes every enum member as a flat module constant, e.g. ``Resolution_Standard``.
FLAT_CONSTANTS: dict[str, int] = {
    f"{e.__name__}_{name}": int(member)
    for e in (AccessMode, ChannelEdge, CoincidenceTimestamp, FrontendType, GatedChannelInitial, Resolution,
              TestSignalSource)
    for name, member in e.__members__.items()
}
FLAT_CONSTANTS["FrontendType_DLScat"] = 5
