"""Virtual channels: ``DelayedChannel``, ``GatedChannel``, ``Combiner``, ``Coincidence(s)``.

A virtual channel is an iterator that runs before the measurements, in
creation order, and adds its output tags to the chunk under a new channel
number (from ``tagger._allocate_virtual_channel()``), so measurements and later
virtual channels see them like physical channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .engine import Chunk
from .enums import CHANNEL_UNUSED, CoincidenceTimestamp, GatedChannelInitial
from .handles import TaggerHandle as TimeTaggerBase  # the vendor's annotation, without importing the tagger
from .iterators import IteratorBase
from .measurements import channel_list
from .pairs import EMPTY
from .signals import ensure_sorted, merge_sorted


def _popcount(values: np.ndarray) -> np.ndarray:
    """Set bits per value (np.bitwise_count exists from NumPy 2.0; the project allows 1.24)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(values).astype(np.int64)
    return sum(((values >> i) & 1 for i in range(33)), np.zeros(values.size, dtype=np.int64))


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
        tags = merge_sorted([pending, tags])
        cut = int(np.searchsorted(tags, chunk.end_ps, side="left"))
        if cut < tags.size:
            self._carry[channel] = tags[cut:]
        # A tag moved before the window (jitter at a chunk edge) is placed at its start.
        out = np.maximum(tags[:cut], chunk.begin_ps)
        existing = chunk.tags.get(channel)
        chunk.tags[channel] = merge_sorted([existing, out]) if existing is not None else out

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
    """Each input tag plus ``multiplier - 1`` tags spread over the period measured from the last two inputs.

    As in a streaming engine, an input supersedes the tags extrapolated from the previous one at or after
    it: the output stays in time order without a sort (for a steady clock nothing is dropped).
    """

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, multiplier: int):
        self._multiplier = int(multiplier)
        if self._multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {multiplier}")
        self._previous: int | None = None
        self._predicted = EMPTY  # tags extrapolated from the last input, at or after the current chunk's end
        super().__init__(tagger, [int(input_channel)])

    def getMultiplier(self) -> int:
        """The upscaling factor."""
        return self._multiplier

    def _on_clear(self) -> None:
        super()._on_clear()
        self._previous = None
        self._predicted = EMPTY

    def _on_chunk(self, chunk: Chunk) -> None:
        tags = chunk.get(self._channels[0])
        parts = [self._predicted[self._predicted < tags[0]] if tags.size else self._predicted]
        if tags.size:
            before = np.concatenate([[self._previous], tags[:-1]]) if self._previous is not None else None
            self._previous = int(tags[-1])
            if before is None:
                before, tags_used = tags[:-1], tags[1:]
                parts.append(tags[:1])
            else:
                tags_used = tags
            extra = np.multiply.outer(tags_used - before, np.arange(self._multiplier, dtype=np.int64))
            if self._multiplier & (self._multiplier - 1) == 0:  # a power of two: the floor division is a shift
                extra >>= self._multiplier.bit_length() - 1
            else:
                extra //= self._multiplier
            extra += tags_used[:, None]
            if extra.shape[0] > 1:  # row i (input i and its extrapolations) ends before input i + 1
                keep = np.ones(extra.shape, dtype=bool)
                keep[:-1] = extra[:-1] < tags_used[1:, None]
                parts.append(extra[keep])
            else:
                parts.append(extra.ravel())
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        cut = int(np.searchsorted(out, chunk.end_ps, side="left"))
        self._predicted = out[cut:]
        self._emit(chunk, self._outputs[0], out[:cut])


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
        self._emit(chunk, self._outputs[0], merge_sorted(list(arrays)))

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
        if self._divider > 1 or self._offset:
            kept = triggers[(number >= self._offset) & ((number - self._offset) % self._divider == 0)]
        else:
            kept = triggers
        tags = np.concatenate([self._pending_tags, (kept[:, None] + self._pattern[None, :]).ravel()])
        if self._stop is None:  # no aborts: the pattern origins are not needed
            tags = ensure_sorted(tags)  # a fresh array: sorted in place, only if a pattern overlaps the next
            cut = int(np.searchsorted(tags, chunk.end_ps, side="left"))
            self._pending_tags = tags[cut:]
            self._emit(chunk, self._outputs[0], tags[:cut])
            return
        origin = np.concatenate([self._pending_triggers, np.repeat(kept, self._pattern.size)])
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


class Combinations(VirtualChannelBase):
    """Tags for each combination of ``channels`` clicking within ``window_size`` between two empty guard windows.

    A combination is a cluster of clicks whose successive gaps are at most the window and whose span is at most
    the window, with no click within a window before or after it; its tag is at its last click. Channels are
    enabled on request (getChannel, getChannels, getChannelByMask, getSumChannel), as with the vendor.
    A cluster that straddles a chunk boundary is emitted at the boundary at the earliest (within a window).
    """

    def __init__(self, tagger: TimeTaggerBase, channels: list[int], window_size: int):
        self._inputs = channel_list("channels", channels)
        if len(set(self._inputs)) != len(self._inputs) or len(self._inputs) > 32:
            raise ValueError(f"channels must be distinct, at most 32, got {self._inputs}")
        self._window = int(window_size)
        if self._window <= 0:
            raise ValueError(f"window_size must be positive (ps), got {window_size}")
        self._by_mask: dict[int, int] = {}
        self._by_sum: dict[int, int] = {}
        self._open_times = EMPTY
        self._open_bits = np.empty(0, dtype=np.int64)
        super().__init__(tagger, self._inputs, outputs=[])

    def _on_clear(self) -> None:
        super()._on_clear()
        self._open_times, self._open_bits = EMPTY, np.empty(0, dtype=np.int64)

    def _mask_of(self, input_channels: list[int]) -> int:
        mask = 0
        for c in channel_list("input_channels", input_channels):
            if int(c) not in self._inputs:
                raise ValueError(f"channel {c} is not one of the monitored channels {self._inputs}")
            mask |= 1 << self._inputs.index(int(c))
        return mask

    def getChannelByMask(self, input_mask: int) -> int:
        """Virtual channel of the combination given as a bit mask over the monitored channels."""
        mask = int(input_mask)
        if not 0 < mask < (1 << len(self._inputs)):
            raise ValueError(f"input_mask must be within 1..{(1 << len(self._inputs)) - 1}, got {mask}")
        with self._lock:
            if mask not in self._by_mask:
                self._by_mask[mask] = self._tagger._allocate_virtual_channel()
            return self._by_mask[mask]

    def getChannel(self, input_channels: list[int]) -> int:  # type: ignore[override]
        """Virtual channel of the combination formed by exactly these channels."""
        return self.getChannelByMask(self._mask_of(input_channels))

    def getChannels(self, list_of_input_channel_sets: list[list[int]]) -> list[int]:  # type: ignore[override]
        """Virtual channels of several combinations."""
        return [self.getChannel(s) for s in list_of_input_channel_sets]

    def getSumChannel(self, n_channels: int) -> int:
        """Virtual channel with a tag for every combination of exactly ``n_channels`` channels."""
        n = int(n_channels)
        if not 1 <= n <= len(self._inputs):
            raise ValueError(f"n_channels must be within 1..{len(self._inputs)}, got {n}")
        with self._lock:
            if n not in self._by_sum:
                self._by_sum[n] = self._tagger._allocate_virtual_channel()
            return self._by_sum[n]

    def getCombination(self, virtual_channel: int) -> list[int]:
        """The monitored channels that form the combination on ``virtual_channel``."""
        for mask, channel in self._by_mask.items():
            if channel == int(virtual_channel):
                return [c for i, c in enumerate(self._inputs) if mask >> i & 1]
        raise ValueError(f"channel {virtual_channel} is not a combination channel of this Combinations")

    def _on_chunk(self, chunk: Chunk) -> None:
        arrays = [chunk.get(c) for c in self._inputs]
        times = np.concatenate([self._open_times, *arrays])
        bits = np.concatenate([self._open_bits, *[np.full(a.size, 1 << i, dtype=np.int64)
                                                  for i, a in enumerate(arrays)]])
        if times.size == 0:
            return
        order = np.argsort(times, kind="stable")
        times, bits = times[order], bits[order]
        starts = np.flatnonzero(np.concatenate([[True], np.diff(times) > self._window]))
        ends = np.concatenate([starts[1:], [times.size]]) - 1
        closed = times[ends] + self._window < chunk.end_ps  # no later click can join
        # The last cluster may continue in the next chunk.
        if not closed[-1]:
            self._open_times, self._open_bits = times[starts[-1]:], bits[starts[-1]:]
        else:
            self._open_times, self._open_bits = EMPTY, np.empty(0, dtype=np.int64)
        starts, ends = starts[closed], ends[closed]
        if starts.size == 0:
            return
        valid = times[ends] - times[starts] <= self._window
        masks = np.bitwise_or.reduceat(bits, starts)[valid]
        stamps = times[ends][valid]
        folds = _popcount(masks)  # channels in each combination
        with self._lock:
            by_mask, by_sum = dict(self._by_mask), dict(self._by_sum)
        for mask, channel in by_mask.items():
            self._emit(chunk, channel, stamps[masks == mask])
        for n, channel in by_sum.items():
            self._emit(chunk, channel, stamps[folds == n])


class ConstantFractionDiscriminator(VirtualChannelBase):
    """The mean of each rising edge and the following falling edge, for pulses shorter than ``search_window``."""

    def __init__(self, tagger: TimeTaggerBase, channels: list[int], search_window: int):
        rising = channel_list("channels", channels)
        if any(c < 0 for c in rising):
            raise ValueError(f"give rising-edge channels only (the falling edges are added), got {rising}")
        self._window = int(search_window)
        if self._window <= 0:
            raise ValueError(f"search_window must be positive (ps), got {search_window}")
        self._rising = rising
        self._pending: dict[int, int] = {}  # a rising edge whose falling edge may come in the next chunk
        super().__init__(tagger, [e for c in rising for e in (c, -c)], n_outputs=len(rising))

    def _on_clear(self) -> None:
        super()._on_clear()
        self._pending.clear()

    def _on_chunk(self, chunk: Chunk) -> None:
        for channel, out in zip(self._rising, self._outputs, strict=True):
            rises, falls = chunk.get(channel), chunk.get(-channel)
            if channel in self._pending:
                rises = np.concatenate([[self._pending.pop(channel)], rises])
            if rises.size == 0:
                continue
            nxt = np.searchsorted(falls, rises, side="right")
            next_rise = np.concatenate([rises[1:], [np.iinfo(np.int64).max]])
            has_fall = nxt < falls.size
            fall = np.where(has_fall, falls[np.minimum(nxt, max(falls.size - 1, 0))] if falls.size else 0, 0)
            ok = has_fall & (fall < next_rise) & (fall - rises <= self._window)
            if not has_fall[-1] and chunk.end_ps - rises[-1] <= self._window:
                self._pending[channel] = int(rises[-1])
            self._emit(chunk, out, (rises[ok] + fall[ok]) // 2)


class ConditionalFilterChannel(VirtualChannelBase):
    """Copies of ``filter_channels`` keeping a tag only if a ``trigger_channels`` tag came since the previous one."""

    def __init__(self, tagger: TimeTaggerBase, filter_channels: list[int] | int, trigger_channels: list[int]):
        self._filtered = channel_list("filter_channels", filter_channels)
        self._triggers = channel_list("trigger_channels", trigger_channels)
        if set(self._filtered) & set(self._triggers):
            raise ValueError("a channel cannot be both filtered and a trigger")
        self._armed = [False] * len(self._filtered)
        super().__init__(tagger, [*self._filtered, *self._triggers], n_outputs=len(self._filtered))

    def _on_clear(self) -> None:
        super()._on_clear()
        self._armed = [False] * len(self._filtered)

    def _on_chunk(self, chunk: Chunk) -> None:
        trig = merge_sorted([chunk.get(c) for c in self._triggers])
        for i, (channel, out) in enumerate(zip(self._filtered, self._outputs, strict=True)):
            tags = chunk.get(channel)
            if tags.size == 0:
                self._armed[i] = self._armed[i] or trig.size > 0
                continue
            seen = np.searchsorted(trig, tags, side="right")
            keep = np.empty(tags.size, dtype=bool)
            keep[0] = self._armed[i] or seen[0] > 0
            keep[1:] = seen[1:] > seen[:-1]
            self._armed[i] = bool(trig.size > seen[-1])
            self._emit(chunk, out, tags[keep])
