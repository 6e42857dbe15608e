"""``Sampler`` (the level of inputs at trigger times) and ``TriggerOnCountrate`` (tags on rate thresholds)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Chunk
from .iterators import IteratorBase
from .measurements import channel_list, positive
from .pairs import EMPTY
from .signals import PS_PER_S
from .virtual import VirtualChannelBase

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase

UNDEFINED = 2


class Sampler(IteratorBase):
    """At each trigger tag, record whether each channel is high (after a rising edge) or low; getData hands it over."""

    def __init__(self, tagger: TimeTaggerBase, trigger: int, channels: list[int], max_triggers: int):
        sampled = channel_list("channels", channels)
        if len(sampled) > 63:
            raise ValueError(f"a Sampler takes at most 63 channels, got {len(sampled)}")
        self._sampled = [abs(int(c)) for c in sampled]
        self._max = positive("max_triggers", max_triggers)
        self._state = np.full(len(sampled), UNDEFINED, dtype=np.int64)
        self._rows: list[np.ndarray] = []
        self._stored = 0
        edges = [e for c in self._sampled for e in (c, -c)]
        super().__init__(tagger, [int(trigger), *edges])

    def _describe(self) -> dict[str, Any]:
        return {"max_triggers": self._max}

    def _on_clear(self) -> None:
        self._state[:] = UNDEFINED
        self._rows.clear()
        self._stored = 0

    def _on_chunk(self, chunk: Chunk) -> None:
        triggers = chunk.get(self._channels[0])
        room = self._max - self._stored
        columns = []
        for i, c in enumerate(self._sampled):
            rises, falls = chunk.get(c), chunk.get(-c)
            events = np.concatenate([rises, falls])
            level = np.concatenate([np.ones(rises.size, np.int64), np.zeros(falls.size, np.int64)])
            order = np.argsort(events, kind="stable")
            events, level = events[order], level[order]
            if triggers.size and room > 0:
                last = np.searchsorted(events, triggers[:room], side="left") - 1  # edges strictly before
                columns.append(np.where(last >= 0, level[np.maximum(last, 0)] if level.size else 0, self._state[i]))
            if level.size:
                self._state[i] = level[-1]
        if triggers.size and room > 0:
            taken = triggers[:room]
            self._rows.append(np.column_stack([taken, *columns]) if columns else taken[:, None])
            self._stored += taken.size

    def _take(self) -> np.ndarray:
        with self._lock:
            rows = np.concatenate(self._rows) if self._rows else np.empty((0, len(self._sampled) + 1), np.int64)
            self._rows, self._stored = [], 0
            return rows.astype(np.int64)

    def getData(self) -> np.ndarray:
        """Remove and return rows of [trigger time, state of each channel] (0 low, 1 high, 2 undefined)."""
        return self._take()

    def getDataAsMask(self) -> np.ndarray:
        """Remove and return rows of [trigger time, bit i = channel i high, bit 63 = any undefined]."""
        rows = self._take()
        states = rows[:, 1:]
        bits = (states == 1).astype(np.uint64) << np.arange(states.shape[1], dtype=np.uint64)
        undefined = (states == UNDEFINED).any(axis=1).astype(np.uint64) << np.uint64(63)
        mask = bits.sum(axis=1, dtype=np.uint64) | undefined
        return np.column_stack([rows[:, 0], mask.view(np.int64)])


class TriggerOnCountrate(VirtualChannelBase):
    """Tags on an *above* and a *below* channel when the rate in a rolling window crosses a threshold."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, reference_countrate: float, hysteresis: float,
                 time_window: int):
        self._window = positive("time_window", time_window)
        reference, hysteresis = float(reference_countrate), float(hysteresis)
        if hysteresis < 0 or reference - hysteresis < 0:
            raise ValueError(f"need 0 <= hysteresis <= reference_countrate, got {hysteresis} and {reference}")
        # Thresholds as counts in the window (rate * window).
        seconds = self._window / PS_PER_S
        self._upper, self._lower = (reference + hysteresis) * seconds, (reference - hysteresis) * seconds
        self._recent = EMPTY  # input tags still inside the window
        self._above: bool | None = None
        self._started_at: int | None = None
        self._inject = False
        self._last_count = 0
        super().__init__(tagger, [int(input_channel)], n_outputs=2)

    def _on_clear(self) -> None:
        super()._on_clear()
        self._recent, self._above, self._started_at = EMPTY, None, None

    def getChannelAbove(self) -> int:
        """Channel of the tags emitted on crossing upwards."""
        return self._outputs[0]

    def getChannelBelow(self) -> int:
        """Channel of the tags emitted on crossing downwards."""
        return self._outputs[1]

    def getCurrentCountrate(self) -> float:
        """Count rate in Hz within the last time window."""
        with self._lock:
            return self._last_count * PS_PER_S / self._window

    def isAbove(self) -> bool:
        """Whether the rate is in the *above* state."""
        with self._lock:
            return bool(self._above)

    def isBelow(self) -> bool:
        """Whether the rate is in the *below* state."""
        with self._lock:
            return self._above is False

    def injectCurrentState(self) -> bool:
        """Emit a tag on the channel of the current state (with the next chunk); False before the first window."""
        with self._lock:
            if self._above is None:
                return False
            self._inject = True
            return True

    def _count(self, tags: np.ndarray, moments: np.ndarray) -> np.ndarray:
        """Tags in the window (moment - time_window, moment] for each moment."""
        return np.searchsorted(tags, moments, side="right") - np.searchsorted(tags, moments - self._window,
                                                                               side="right")

    def _on_chunk(self, chunk: Chunk) -> None:
        if self._started_at is None:
            self._started_at = chunk.begin_ps
        arrivals = chunk.get(self._channels[0])
        tags = np.concatenate([self._recent, arrivals])
        # The count changes when a tag arrives and when it leaves the window; tags are emitted at the window end.
        # It is a running sum over both kinds of event (two sorted runs, merged by a stable argsort): every tag
        # still in the window at the chunk's start leaves within it or later, never before.
        leaving = tags[: int(np.searchsorted(tags, chunk.end_ps - self._window, side="left"))] + self._window
        events = np.concatenate([arrivals, leaving])
        order = np.argsort(events, kind="stable")
        events = events[order]
        running = np.cumsum((order < arrivals.size).view(np.int8) * 2 - 1, dtype=np.int64)
        running += self._recent.size
        last = np.ones(events.size, dtype=bool)  # the last event at each time gives the count at that moment
        np.not_equal(events[1:], events[:-1], out=last[:-1])
        moments, moment_counts = events[last], running[last]
        first_valid = self._started_at + self._window
        if first_valid >= chunk.begin_ps:
            after = moments > first_valid
            moments, moment_counts = moments[after], moment_counts[after]
        above_out: list[int] = []
        below_out: list[int] = []
        if self._inject and self._above is not None:
            (above_out if self._above else below_out).append(chunk.begin_ps)
            self._inject = False
        if self._above is None:
            if not chunk.begin_ps <= first_valid < chunk.end_ps:
                self._recent = tags[np.searchsorted(tags, chunk.end_ps - self._window, side="right"):]
                return
            # The first tag comes one window after creation and reports the state, even inside the band.
            count = self._count(tags, np.array([first_valid]))[0]
            self._above = bool(count >= (self._upper + self._lower) / 2)
            (above_out if self._above else below_out).append(first_valid)
        up = moment_counts >= self._upper
        known = np.flatnonzero(up | (moment_counts <= self._lower))
        if known.size:
            filled = np.where(up[known], 1, -1)
            before = np.concatenate([[1 if self._above else -1], filled[:-1]])
            change = filled != before
            times, kinds = moments[known][change], filled[change]
            above_out += times[kinds == 1].tolist()
            below_out += times[kinds == -1].tolist()
            self._above = bool(filled[-1] == 1)
        self._last_count = int(self._count(tags, np.array([chunk.end_ps - 1]))[0])
        self._recent = tags[np.searchsorted(tags, chunk.end_ps - self._window, side="right"):]
        self._emit(chunk, self._outputs[0], np.asarray(sorted(above_out), dtype=np.int64))
        self._emit(chunk, self._outputs[1], np.asarray(sorted(below_out), dtype=np.int64))
