"""``client.TagStream``: iterate over a server's raw tags, for code that wants a loop instead of a class.

``for tags, begin, end in TagStream(TT, tagger, [1, 2], capture_duration=10**12): ...`` gives each chunk's
tags as an ``INCOMING_TAGS_DTYPE`` array, in time order, over the same bounded, loss-marking stream as
``TT.CustomMeasurement`` (docs/recordings.md). Without ``capture_duration`` the stream runs until the
loop ends (or, on a SynchronizedMeasurements tagger, until the group has run and stopped).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..sim.custom import INCOMING_TAGS_DTYPE

READ_WAIT_S = 0.2
READ_MAX_BYTES = 32 * 1024 * 1024


class TagStream:
    """The raw tags of ``channels`` on ``tagger``, pulled from the server as the loop asks for them."""

    def __init__(self, library: Any, tagger: Any, channels: list[int], capture_duration: int | None = None):
        self._library = library
        opened = library.hub_stream_open(tagger, [int(c) for c in channels])
        self.id: str = opened["id"]
        self._reader = library._taggerhub_new_connection()
        if capture_duration is not None:
            library.hub_stream_control(self.id, "startFor", int(capture_duration), True)

    def __iter__(self) -> Iterator[tuple[np.ndarray, int, int]]:
        ran = False
        while True:
            batch = self._reader.hub_stream_read(self.id, READ_MAX_BYTES, READ_WAIT_S)
            if batch.get("closed"):
                return
            tags = np.frombuffer(batch["tags"], dtype=INCOMING_TAGS_DTYPE)
            offset = 0
            for begin, end, count in batch["frames"]:
                yield tags[offset:offset + count], begin, end
                offset += count
            ran = ran or batch["running"] or batch["capture_ps"] > 0
            if ran and not batch["running"] and not batch["pending"]:
                return

    def state(self) -> dict[str, Any]:
        """Tags in, sent and lost, and whether the stream runs (``hub_stream_state``)."""
        return self._library.hub_stream_state(self.id)

    def close(self) -> None:
        """Free the stream on the server."""
        with contextlib.suppress(Exception):  # the server or the session may be gone already
            self._library.hub_stream_close(self.id)
        with contextlib.suppress(Exception):
            self._reader._pyroRelease()

    def __enter__(self) -> TagStream:
        return self

    def __exit__(self, *exc: object) -> bool:
        self.close()
        return False
