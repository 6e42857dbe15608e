"""Virtual channels: ``DelayedChannel``, ``GatedChannel``, ``Combiner``, ``Coincidence(s)``.

A virtual channel is an iterator that runs before the measurements, in
creation order, and adds its output tags to the chunk under a new channel
number (from ``tagger._allocate_virtual_channel()``), so measurements and later
virtual channels see them like physical channels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Chunk
from .enums import CHANNEL_UNUSED, CoincidenceTimestamp, GatedChannelInitial
from .iterators import IteratorBase
from .measurements import channel_list
from .pairs import EMPTY

if TYPE_CHECKING:
    from .tagger import TimeTaggerBase


def merge_sorted(*arrays: np.ndarray) -> np.ndarray:
    """Merge sorted arrays into one sorted array."""
    parts = [a for a in arrays if a.size]
    if not parts:
        return EMPTY
    if len(parts) == 1:
        return parts[0]
    merged = np.concatenate(parts)
    merged.sort(kind="stable")
    return merged


class VirtualChannelBase(IteratorBase):
    """An iterator whose output is added to the chunk before the measurements see it."""

    _is_virtual = True

    def __init__(self, tagger: TimeTaggerBase, channels: list[int], n_outputs: int = 1,
                 outputs: list[int] | None = None):
        # Set before attaching: the engine may feed a chunk as soon as the base class registers us.
        self._outputs = outputs if outputs is not None else [tagger._allocate_virtual_channel()
                                                            for _ in range(n_outputs)]
        self._carry: dict[int, np.ndarray] = {}
        super().__init__(tagger, channels)

    def _feed(self, chunk: Chunk) -> None:
        with self._lock:
            if not self._running:
                return
            self._on_chunk(chunk)
            self._capture_ps += chunk.end_ps - chunk.begin_ps
            if self._stop_at_ps is not None and self._capture_ps >= self._stop_at_ps:
                self._running = False
                self._stop_at_ps = None
                self._finished.notify_all()

    def _emit(self, chunk: Chunk, channel: int, tags: np.ndarray, presorted: bool = True) -> None:
        """Add tags to ``channel`` in this chunk; tags past its end wait for the next one."""
        pending = self._carry.pop(channel, EMPTY)
        if not presorted:
            tags = np.sort(tags)
        tags = merge_sorted(pending, tags)
        cut = int(np.searchsorted(tags, chunk.end_ps, side="left"))
        if cut < tags.size:
            self._carry[channel] = tags[cut:]
        # A tag moved before the window (jitter at a chunk edge) is placed at its start.
        out = np.maximum(tags[:cut], chunk.begin_ps)
        existing = chunk.tags.get(channel)
        chunk.tags[channel] = merge_sorted(existing, out) if existing is not None else out

    def _on_clear(self) -> None:
        self._carry.clear()

    def getChannel(self) -> int:
        """The virtual channel number of the output."""
        return self._outputs[0]

    def getChannels(self) -> list[int]:
        """The virtual channel numbers of all outputs."""
        return list(self._outputs)

    def _describe(self) -> dict[str, Any]:
        return {"outputs": self._outputs}


class DelayedChannels(VirtualChannelBase):
    """Copies of ``input_channels``, each delayed by ``delay`` ps, on new virtual channels."""

    def __init__(self, tagger: TimeTaggerBase, input_channels: list[int], delay: int):
        self._delay = self._check_delay(delay)
        inputs = channel_list("input_channels", input_channels)
        super().__init__(tagger, inputs, n_outputs=len(inputs))

    @staticmethod
    def _check_delay(delay: int) -> int:
        delay = int(delay)
        if delay < 0:
            raise ValueError(f"delay must be >= 0 ps for a delayed channel, got {delay}; "
                             "use setInputDelay for negative delays")
        return delay

    def setDelay(self, delay: int) -> None:
        """Change the delay in ps."""
        delay = self._check_delay(delay)
        with self._lock:
            self._delay = delay

    def _on_chunk(self, chunk: Chunk) -> None:
        for source, out in zip(self._channels, self._outputs, strict=True):
            self._emit(chunk, out, chunk.get(source) + self._delay)


class DelayedChannel(DelayedChannels):
    """A copy of ``input_channel`` delayed by ``delay`` ps."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, delay: int):
        super().__init__(tagger, [int(input_channel)], delay)


class GatedChannels(VirtualChannelBase):
    """Tags of ``input_channels`` that arrive while the gate is open, one virtual channel each."""

    def __init__(self, tagger: TimeTaggerBase, input_channels: list[int], gate_start_channel: int,
                 gate_stop_channel: int, initial: GatedChannelInitial = GatedChannelInitial.Closed):
        if int(gate_start_channel) == int(gate_stop_channel):
            raise ValueError(f"gate_start_channel and gate_stop_channel must differ, both are {gate_start_channel}")
        self._initial = bool(GatedChannelInitial(int(initial)))
        self._open = self._initial
        self._inputs = channel_list("input_channels", input_channels)
        self._gate = (int(gate_start_channel), int(gate_stop_channel))
        super().__init__(tagger, [*self._inputs, *self._gate], n_outputs=len(self._inputs))

    def _on_clear(self) -> None:
        super()._on_clear()
        self._open = self._initial

    def _on_chunk(self, chunk: Chunk) -> None:
        opens, closes = (chunk.get(c) for c in self._gate)
        events = np.concatenate([opens, closes])
        state = np.concatenate([np.ones(opens.size, dtype=bool), np.zeros(closes.size, dtype=bool)])
        order = np.argsort(events, kind="stable")
        events, state = events[order], state[order]
        for source, out in zip(self._inputs, self._outputs, strict=True):
            tags = chunk.get(source)
            if events.size == 0:
                self._emit(chunk, out, tags if self._open else EMPTY)
                continue
            last = np.searchsorted(events, tags, side="right") - 1
            is_open = np.where(last >= 0, state[np.maximum(last, 0)], self._open)
            self._emit(chunk, out, tags[is_open])
        if events.size:
            self._open = bool(state[-1])


class GatedChannel(GatedChannels):
    """Tags of ``input_channel`` that arrive while the gate is open."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, gate_start_channel: int,
                 gate_stop_channel: int, initial: GatedChannelInitial = GatedChannelInitial.Closed):
        super().__init__(tagger, [int(input_channel)], gate_start_channel, gate_stop_channel, initial)


class FrequencyMultiplier(VirtualChannelBase):
    """Each input tag plus ``multiplier - 1`` tags spread over the period measured from the last two inputs."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, multiplier: int):
        self._multiplier = int(multiplier)
        if self._multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {multiplier}")
        self._previous: int | None = None
        super().__init__(tagger, [int(input_channel)])

    def getMultiplier(self) -> int:
        """The upscaling factor."""
        return self._multiplier

    def _on_clear(self) -> None:
        super()._on_clear()
        self._previous = None

    def _on_chunk(self, chunk: Chunk) -> None:
        tags = chunk.get(self._channels[0])
        if tags.size == 0:
            return
        before = np.concatenate([[self._previous], tags[:-1]]) if self._previous is not None else None
        self._previous = int(tags[-1])
        if before is None:
            before, tags_used, first = tags[:-1], tags[1:], tags[:1]
        else:
            tags_used, first = tags, EMPTY
        period = tags_used - before
        steps = np.arange(self._multiplier, dtype=np.int64)
        # Copies of the inputs (step 0) and the extrapolated tags until the next input is expected.
        extra = (tags_used[:, None] + (period[:, None] * steps[None, :]) // self._multiplier).ravel()
        self._emit(chunk, self._outputs[0], merge_sorted(first, extra), presorted=False)


class Combiner(VirtualChannelBase):
    """The union (OR) of several channels on one virtual channel."""

    def __init__(self, tagger: TimeTaggerBase, channels: list[int]):
        channels = channel_list("Combiner", channels)
        self._counts = np.zeros(len(channels), dtype=np.int64)
        super().__init__(tagger, channels)

    def _on_clear(self) -> None:
        super()._on_clear()
        self._counts[:] = 0

    def _on_chunk(self, chunk: Chunk) -> None:
        arrays = [chunk.get(c) for c in self._channels]
        self._counts += [a.size for a in arrays]
        self._emit(chunk, self._outputs[0], merge_sorted(*arrays))

    def getChannelCounts(self) -> np.ndarray:
        """Tags contributed by each input channel since the last clear."""
        with self._lock:
            return self._counts.copy()

    def getData(self) -> np.ndarray:
        """Same as getChannelCounts (deprecated by the vendor)."""
        return self.getChannelCounts()


class Coincidences(VirtualChannelBase):
    """One virtual channel per group: a tag whenever every channel of the group fired within the window."""

    def __init__(self, tagger: TimeTaggerBase, coincidenceGroups: list[list[int]], coincidenceWindow: int,
                 timestamp: CoincidenceTimestamp = CoincidenceTimestamp.Last):
        groups = [channel_list("coincidence group", g) for g in coincidenceGroups]
        if not groups:
            raise ValueError("coincidenceGroups needs at least one group of channels")
        self._groups = groups
        self._window = self._check_window(coincidenceWindow)
        self._timestamp = CoincidenceTimestamp(int(timestamp))
        self._last: dict[int, int] = {}
        channels = sorted({c for g in groups for c in g})
        super().__init__(tagger, channels, n_outputs=len(groups))

    @staticmethod
    def _check_window(window: int) -> int:
        window = int(window)
        if window < 0:
            raise ValueError(f"coincidenceWindow must be >= 0 ps, got {window}")
        return window

    def setCoincidenceWindow(self, coincidenceWindow: int) -> None:
        """Change the coincidence window in ps."""
        window = self._check_window(coincidenceWindow)
        with self._lock:
            self._window = window

    def _on_clear(self) -> None:
        super()._on_clear()
        self._last.clear()

    def _on_chunk(self, chunk: Chunk) -> None:
        for group, out in zip(self._groups, self._outputs, strict=True):
            self._emit(chunk, out, self._group(chunk, group),
                       presorted=self._timestamp == CoincidenceTimestamp.Last)
        for c in self._channels:
            tags = chunk.get(c)
            if tags.size:
                self._last[c] = int(tags[-1])

    def _group(self, chunk: Chunk, group: list[int]) -> np.ndarray:
        arrays = [chunk.get(c) for c in group]
        total = sum(a.size for a in arrays)
        if total == 0:
            return EMPTY
        times = np.concatenate(arrays)
        order = np.argsort(times, kind="stable")
        times = times[order]
        # Latest tag of each channel at or before every event of the group.
        latest = np.empty((len(group), total), dtype=np.int64)
        inverse = np.empty(total, dtype=np.int64)
        inverse[order] = np.arange(total)
        offset = 0
        for i, (c, a) in enumerate(zip(group, arrays, strict=True)):
            mine = np.zeros(total, dtype=bool)
            mine[inverse[offset:offset + a.size]] = True
            offset += a.size
            values = np.where(mine, times, self._last.get(c, -(2**62)))
            latest[i] = np.maximum.accumulate(values)
        earliest = latest.min(axis=0)
        hit = times - earliest <= self._window
        if not hit.any():
            return EMPTY
        if self._timestamp == CoincidenceTimestamp.Last:
            return times[hit]
        if self._timestamp == CoincidenceTimestamp.First:
            return earliest[hit]
        if self._timestamp == CoincidenceTimestamp.ListedFirst:
            return latest[0][hit]
        return np.rint(latest[:, hit].mean(axis=0)).astype(np.int64)

    def _describe(self) -> dict[str, Any]:
        return {"groups": self._groups, "window": self._window, "timestamp": self._timestamp.name,
                "outputs": self._outputs}


class Coincidence(Coincidences):
    """One virtual channel with a tag whenever all ``channels`` fired within ``coincidenceWindow`` ps."""

    def __init__(self, tagger: TimeTaggerBase, channels: list[int], coincidenceWindow: int = 1000,
                 timestamp: CoincidenceTimestamp = CoincidenceTimestamp.Last):
        super().__init__(tagger, [channel_list("Coincidence", channels)], coincidenceWindow, timestamp)


class EventGenerator(VirtualChannelBase):
    """Emits ``pattern`` (ps offsets) after every kept trigger; a ``stop_channel`` tag aborts running patterns."""

    def __init__(self, tagger: TimeTaggerBase, trigger_channel: int, pattern: list[int], trigger_divider: int = 1,
                 divider_offset: int = 0, stop_channel: int = CHANNEL_UNUSED):
        self._pattern = np.sort(np.asarray([int(p) for p in pattern], dtype=np.int64))
        if self._pattern.size == 0 or self._pattern[0] < 0:
            raise ValueError("pattern needs at least one offset, all >= 0 ps")
        self._divider = int(trigger_divider)
        if self._divider < 1:
            raise ValueError(f"trigger_divider must be >= 1, got {trigger_divider}")
        self._offset = int(divider_offset)
        if not self._offset >= 0:
            raise ValueError(f"divider_offset must be >= 0, got {divider_offset}")
        self._stop = None if int(stop_channel) == CHANNEL_UNUSED else int(stop_channel)
        self._seen = 0  # triggers seen since clear, for the divider
        self._pending_tags = EMPTY
        self._pending_triggers = EMPTY
        super().__init__(tagger, [int(trigger_channel)] + ([self._stop] if self._stop is not None else []))

    def _on_clear(self) -> None:
        super()._on_clear()
        self._seen = 0
        self._pending_tags = self._pending_triggers = EMPTY

    def _on_chunk(self, chunk: Chunk) -> None:
        triggers = chunk.get(self._channels[0])
        number = self._seen + np.arange(triggers.size)
        self._seen += triggers.size
        kept = triggers[(number >= self._offset) & ((number - self._offset) % self._divider == 0)]
        tags = np.concatenate([self._pending_tags, (kept[:, None] + self._pattern[None, :]).ravel()])
        origin = np.concatenate([self._pending_triggers, np.repeat(kept, self._pattern.size)])
        if self._stop is not None:
            stops = chunk.get(self._stop)
            if stops.size:
                aborted = np.searchsorted(stops, tags, side="right") > np.searchsorted(stops, origin, side="right")
                tags, origin = tags[~aborted], origin[~aborted]
        later = tags >= chunk.end_ps
        self._pending_tags, self._pending_triggers = tags[later], origin[later]
        self._emit(chunk, self._outputs[0], tags[~later], presorted=False)


class SyntheticSingleTag(VirtualChannelBase):
    """A tag on the channel each time ``trigger()`` is called (at the tag time being processed)."""

    def __init__(self, tagger: TimeTaggerBase, base_channel: int = CHANNEL_UNUSED):
        base = None if int(base_channel) == CHANNEL_UNUSED else tagger._check_channel(base_channel)
        self._requests = 0
        super().__init__(tagger, [], outputs=[base] if base is not None else None)

    def trigger(self) -> None:
        """Generate one tag."""
        with self._lock:
            self._requests += 1
        self._tagger._engine.poke()

    def _on_chunk(self, chunk: Chunk) -> None:
        if self._requests:
            self._emit(chunk, self._outputs[0], np.full(self._requests, chunk.begin_ps, dtype=np.int64))
            self._requests = 0
