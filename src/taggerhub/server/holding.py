"""Which virtual channels a new measurement reads, so that the object table keeps them alive.

In one process a script may drop its ``DelayedChannel`` proxy once a ``Correlation`` reads the
delayed channel; through taggerhub the client then tells the server it is done with it
(``hub_release``). The table must not free a virtual channel another live object still reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from ..backend.adapter import Adapter
from ..backend.kinds import ObjectKind


def channel_numbers(values: Iterable[Any]) -> set[int]:
    """The integers among call arguments (and one level of lists of them): the channels it may read."""
    found: set[int] = set()
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool):
            found.add(value)
        elif isinstance(value, list | tuple):
            found.update(v for v in value if isinstance(v, int) and not isinstance(v, bool))
    return found


def virtual_channels_of(obj: Any, physical: set[int]) -> set[int]:
    """The channels ``obj`` produces: its ``getChannels()``/``getChannel()`` that are not input channels."""
    if obj is None:
        return set()
    for name in ("getChannels", "getChannel"):
        method = getattr(obj, name, None)
        if method is None:
            continue
        with contextlib.suppress(TypeError, ValueError, RuntimeError, AttributeError):
            produced = method()
            channels = {int(c) for c in produced} if hasattr(produced, "__iter__") else {int(produced)}
            return channels - physical
    return set()


def read_virtual_channels(tagger: Adapter, children_of: Callable[[Adapter], list[Adapter]], new: Adapter,
                          args: Iterable[Any]) -> list[Adapter]:
    """The objects under ``tagger`` whose virtual channels ``new`` was made to read (none: no lookup)."""
    wanted = channel_numbers(args)
    if not wanted or tagger._obj is None:
        return []
    try:
        physical = {int(c) for c in tagger._obj.getChannelList()}
    except (AttributeError, TypeError, RuntimeError):
        physical = set()
    wanted -= physical
    if not wanted:
        return []
    candidates, above = children_of(tagger), tagger._parent
    while above is not None:  # a SynchronizedMeasurements' tagger reads the channels of the tagger it groups
        candidates += children_of(above)
        above = above._parent
    return [c for c in candidates if c is not new and c._kind == ObjectKind.iterator  # not data objects
            and wanted & virtual_channels_of(c._obj, physical)]
