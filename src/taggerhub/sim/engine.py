"""The tag engine: turns signal sources into a time-tag stream, chunk by chunk.

A background thread advances simulated time, either against the wall clock
(``realtime``) or as fast as the CPU allows while measurements run
(``virtual``, for tests). For each chunk it asks the sources for their edges,
passes each channel through the input stage (test signal, trigger level,
tagger jitter, input delay, dead time, event divider), and hands the result to
every virtual channel and measurement in creation order. Only channels that
something has registered are computed, as on the real device.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .models import ModelSpec
from .signals import PS_PER_S, Noise, SignalSource, ensure_sorted, merge_sorted

# Every output tag lags its source edge by this much, so that jitter and
# negative delays never push a tag into a window already handed out.
BASE_LATENCY_PS = 1_000_000
REALTIME_MAX_CHUNK_PS = 20_000_000_000  # 20 ms
VIRTUAL_CHUNK_PS = 10_000_000_000  # 10 ms
REALTIME_TICK_S = 0.002
# How far the realtime engine may lag the wall clock before it drops tags, as the device does when the
# PC cannot take them (its buffer fills): the window becomes an overflow interval that getOverflows()
# counts and that streams mark with OverflowBegin, MissedEvents and OverflowEnd, instead of time stretching.
# That is when the lag is this long and holds more tags (at the recent rate of the wanted channels) than the
# device's buffer (getHardwareBufferSize(), 64 MTags by default as the vendor documents), or than the shared
# engine lets wait (ENGINE_BACKLOG_TAGS: past 8 MTags/s the 0.5 s decide, so a heavy user cannot hold every
# other user's measurements back for seconds). A process() that stalls a second at a low rate (numba compiling
# its first call) loses nothing, as on the device.
REALTIME_MAX_LAG_PS = 500_000_000_000  # 500 ms: a busy shared PC may stall the engine that long
DEVICE_BUFFER_TAGS = 64 * 1024 * 1024
ENGINE_BACKLOG_TAGS = 4 * 1024 * 1024
# An overflow window is generated whole (exact missed counts) when that takes at most OVERFLOW_BUDGET_S of wall
# time at the engine's measured generation speed; a longer one (an engine that cannot keep up at all) generates
# only its last part that fits the budget (at least OVERFLOW_MIN_SAMPLE_PS) and scales the counts. Bounding the
# cost by time, not by length, keeps capture time moving with the wall clock: an overflow never outgrows the one
# before, and the engine never stalls for long generating tags nobody receives.
OVERFLOW_BUDGET_S = 0.1
OVERFLOW_MIN_SAMPLE_PS = 20_000_000_000  # 20 ms
SPEED_SMOOTHING = 0.3  # weight of the newest chunk in the generation speed's moving average
EMPTY = np.empty(0, dtype=np.int64)
MERGE_KEY_BITS = 8  # Chunk.merged: channel index bits in the sort key
MERGE_KEY_CHANNELS = 1 << MERGE_KEY_BITS
MERGE_KEY_SPAN_PS = 1 << (62 - MERGE_KEY_BITS)  # a chunk spanning more (hours) is merged by argsort


@dataclass
class Chunk:
    """Tags of one window of simulated time, kept per channel (each sorted)."""

    begin_ps: int
    end_ps: int
    tags: dict[int, np.ndarray]
    # Set for an overflow interval: tags dropped per channel (``tags`` is then empty), as the device reports.
    missed: dict[int, int] | None = None
    # What consumers derive from the chunk and can share (e.g. merged records for CustomMeasurements on the
    # same channels): made once per chunk, not once per consumer.
    cache: dict[Any, Any] = field(default_factory=dict)

    def get(self, channel: int) -> np.ndarray:
        return self.tags.get(channel, EMPTY)

    def merged(self, channels: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All tags of the given channels as (timestamps, channels), time-ordered."""
        wanted = list(self.tags) if channels is None else [c for c in channels if c in self.tags]
        if not wanted:
            return EMPTY, np.empty(0, dtype=np.int32)
        if len(wanted) == 1:  # one channel is already in time order: no sort
            return self.tags[wanted[0]], np.full(self.tags[wanted[0]].size, wanted[0], dtype=np.int32)
        keyed = self.sorted_keys(wanted)
        if keyed is not None:
            key, base, table = keyed
            chans = np.take(table, key & (MERGE_KEY_CHANNELS - 1), mode="clip")
            key >>= MERGE_KEY_BITS
            key += base
            return key, chans
        stamps = np.concatenate([self.tags[c] for c in wanted])
        chans = np.concatenate([np.full(self.tags[c].size, c, dtype=np.int32) for c in wanted])
        order = np.argsort(stamps, kind="stable")
        return stamps[order], chans[order]

    def sorted_keys(self, wanted: list[int]) -> tuple[np.ndarray, int, np.ndarray] | None:
        """The tags of ``wanted`` (channels of this chunk) as one sorted int64 key each, or None if they do not fit.

        A key is the time since ``base`` (the first tag) shifted up, with the channel's index into ``table`` in
        the low MERGE_KEY_BITS. Sorting the keys (sorted runs: timsort merges them) costs a third of an argsort
        plus the gathers it needs, and the channel comes back out of the key.
        """
        arrays = [self.tags[c] for c in wanted]
        filled = [a for a in arrays if a.size]
        if not filled or len(wanted) > MERGE_KEY_CHANNELS:
            return None
        base = min(int(a[0]) for a in filled)
        if max(int(a[-1]) for a in filled) - base >= MERGE_KEY_SPAN_PS:
            return None
        key = np.empty(sum(a.size for a in arrays), dtype=np.int64)
        at = 0
        for index, part in enumerate(arrays):
            view = key[at:at + part.size]
            np.subtract(part, base, out=view)
            view <<= MERGE_KEY_BITS
            view |= index
            at += part.size
        key.sort(kind="stable")
        return key, base, np.asarray(wanted, dtype=np.int32)


@dataclass
class InputState:
    """Settings and carried-over state of one input (one edge of one channel)."""

    test_signal: bool = False
    trigger_level_v: float = 0.5
    delay_ps: int = 0
    deadtime_ps: int = 0
    event_divider: int = 1
    divider_count: int = 0
    last_kept_ps: int = -(2**62)
    pending: np.ndarray = field(default_factory=lambda: EMPTY)


class InputStage:
    """Per-channel processing between the sources and the tag stream."""

    def __init__(self, model: ModelSpec, sources: list[SignalSource], rng: np.random.Generator):
        self.model = model
        self.sources = sources
        self.rng = Noise(rng)
        self.test_signal_divider = model.test_signal_default_divider
        self.inputs: dict[int, InputState] = {}
        for ch in range(1, model.channels + 1):
            self.inputs[ch] = InputState(deadtime_ps=model.deadtime_min_ps)
            self.inputs[-ch] = InputState(deadtime_ps=model.deadtime_min_ps)
        self.overflows = 0
        # Set by the last process() that hit the USB limit: (where it cut, tags dropped per channel).
        self.usb_cut: tuple[int, dict[int, int]] | None = None
        self.filter_trigger: list[int] = []
        self.filter_filtered: list[int] = []
        self._filter_armed: dict[int, bool] = {}

    def test_signal_period_ps(self) -> float:
        return PS_PER_S * self.test_signal_divider / self.model.test_signal_base_hz

    def _source_edges(self, wanted: set[int], t0: int, t1: int) -> dict[int, list[tuple[np.ndarray, float, int]]]:
        """Pulse starts from the sources for the physical channels in ``wanted``, as (times, amplitude, width)."""
        pulses: dict[int, list[tuple[np.ndarray, float, int]]] = {}
        for source in self.sources:
            chans = source.channels()
            if not wanted.intersection(chans):
                continue
            for ch, times in source.generate(self.rng, t0, t1).items():
                pulses.setdefault(ch, []).append((times, source.amplitude_v, source.pulse_width_ps))
        return pulses

    @staticmethod
    def _edges_at_level(pulses: list[tuple[np.ndarray, float, int]], level_v: float, falling: bool) -> np.ndarray:
        """Edges that cross ``level_v``, for the rising (or falling) edge channel.

        A pulse from the 0 V baseline to ``amplitude`` crosses a level strictly between the two, so
        negative pulses need a negative trigger level and positive ones a positive level. A positive
        pulse rises at its start and falls ``width`` later; a negative one falls first, rises at its end.
        """
        parts = []
        for times, amplitude, width in pulses:
            if not min(0.0, amplitude) < level_v < max(0.0, amplitude):
                continue  # the level is beyond the pulse (or on the baseline side): nothing triggers
            trailing = falling if amplitude > 0 else not falling
            parts.append(times + width if trailing and width else times)
        return merge_sorted(parts)

    def _test_signal(self, t0: int, t1: int, falling: bool) -> np.ndarray:
        period = self.test_signal_period_ps()
        offset = period / 2 if falling else 0.0
        first = int(np.ceil((t0 - offset) / period))
        last = int(np.ceil((t1 - offset) / period))
        return np.rint(np.arange(first, last, dtype=np.float64) * period + offset).astype(np.int64)

    def process(self, wanted: set[int], t0: int, t1: int) -> dict[int, np.ndarray]:
        """Produce the output tags in [t0, t1) for the channels in ``wanted``."""
        filtering = bool(self.filter_filtered) and not wanted.isdisjoint(self.filter_filtered)
        if filtering:
            out = self._process(wanted | set(self.filter_trigger), t0, t1)
            out = self._conditional_filter(out)
            return {ch: a for ch, a in out.items() if ch in wanted}
        return self._process(wanted, t0, t1)

    def _conditional_filter(self, out: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Keep a tag on a filtered channel only if a trigger tag came since that channel's previous tag."""
        triggers = [out[c] for c in self.filter_trigger if c in out and out[c].size]
        trig = np.sort(np.concatenate(triggers)) if triggers else EMPTY
        for ch in self.filter_filtered:
            tags = out.get(ch)
            if tags is None:
                continue
            armed = self._filter_armed.get(ch, False)
            if tags.size == 0:
                self._filter_armed[ch] = armed or trig.size > 0
                continue
            seen = np.searchsorted(trig, tags, side="right")
            keep = np.empty(tags.size, dtype=bool)
            keep[0] = armed or seen[0] > 0
            keep[1:] = seen[1:] > seen[:-1]
            self._filter_armed[ch] = trig.size > seen[-1]
            out[ch] = tags[keep]
        return out

    def _process(self, wanted: set[int], t0: int, t1: int) -> dict[int, np.ndarray]:
        physical = {abs(c) for c in wanted}
        pulses = self._source_edges(physical, t0, t1)
        min_delay = min((s.delay_ps for s in self.inputs.values()), default=0)
        shift_base = BASE_LATENCY_PS - min(0, min_delay)
        out: dict[int, np.ndarray] = {}
        for channel in wanted:
            state = self.inputs.get(channel)
            if state is None:
                continue
            phys = abs(channel)
            rising_state = self.inputs[phys]
            if rising_state.test_signal:
                raw = self._test_signal(t0, t1, falling=channel < 0)
            else:
                raw = self._edges_at_level(pulses.get(phys, []), rising_state.trigger_level_v, channel < 0)
            shifted = raw + (shift_base + state.delay_ps)
            if self.model.jitter_rms_ps > 0 and shifted.size:
                self.rng.add_gaussian(shifted, self.model.jitter_rms_ps)
                ensure_sorted(shifted)
            if state.pending.size:
                shifted = merge_sorted([state.pending, shifted])
            cut = int(np.searchsorted(shifted, t1))
            state.pending = shifted[cut:]
            emitted = shifted[:cut]
            emitted = self._apply_deadtime(state, emitted)
            emitted = self._apply_divider(state, emitted)
            out[channel] = emitted
        return self._limit_rate(out, t0, t1)

    @staticmethod
    def _apply_deadtime(state: InputState, times: np.ndarray) -> np.ndarray:
        """Drop every tag closer than the dead time to the previous kept tag (exact, non-paralysable)."""
        dead = state.deadtime_ps
        if times.size == 0:
            return times
        if dead > 0:
            if times[0] - state.last_kept_ps < dead:
                times = times[times - state.last_kept_ps >= dead]
            for _ in range(8):
                if times.size < 2:
                    break
                close = np.flatnonzero(np.diff(times) < dead)
                if close.size == 0:
                    break
                if close.size * 8 < times.size or _ == 7:
                    times = InputStage._deadtime_clusters(times, close, dead)
                    break
                # Dense: first drop tags too close to a predecessor that is surely kept.
                too_close = np.zeros(times.size - 1, dtype=bool)
                too_close[close] = True
                drop = np.zeros(times.size, dtype=bool)
                drop[1:] = too_close
                drop[2:] &= ~too_close[:-1]
                times = times[~drop]
        if times.size:
            state.last_kept_ps = int(times[-1])
        return times

    @staticmethod
    def _deadtime_clusters(times: np.ndarray, close: np.ndarray, dead: int) -> np.ndarray:
        """Exact filter when only clusters of close tags (``close``: index i, i+1 too close) need it.

        Gaps between clusters exceed the dead time, so each cluster is filtered on its own. A cluster
        of two tags (the usual case at moderate rates) just loses its second tag; longer ones go through
        the sequential rule.
        """
        chained = np.diff(close) == 1
        joined_before = np.concatenate([[False], chained])
        joined_after = np.concatenate([chained, [False]])
        mask = np.ones(times.size, dtype=bool)
        pairs = close[~joined_before & ~joined_after]
        mask[pairs + 1] = False
        long_runs = close[joined_before | joined_after]
        if long_runs.size:
            members = np.unique(np.concatenate([long_runs, long_runs + 1]))
            cluster = times[members]
            kept = InputStage._deadtime_chain(cluster, dead)
            drop = np.ones(members.size, dtype=bool)
            drop[np.searchsorted(cluster, kept)] = False
            mask[members[drop]] = False
        return times[mask]

    @staticmethod
    def _deadtime_chain(times: np.ndarray, dead: int) -> np.ndarray:
        """Exact dead-time filter for long dense runs: jump from kept tag to kept tag."""
        if times.size < 2:
            return times
        following = np.searchsorted(times, times + dead).tolist()
        kept = []
        i, n = 0, times.size
        while i < n:
            kept.append(i)
            i = following[i]
        return times[kept]

    @staticmethod
    def _apply_divider(state: InputState, times: np.ndarray) -> np.ndarray:
        n = state.event_divider
        if n <= 1 or times.size == 0:
            return times
        # Keep every n-th tag, counting across chunks.
        first = (n - 1 - state.divider_count) % n
        kept = times[first::n]
        state.divider_count = (state.divider_count + times.size) % n
        return kept

    def _limit_rate(self, out: dict[int, np.ndarray], t0: int, t1: int) -> dict[int, np.ndarray]:
        """Model the USB limit: beyond it the device drops the rest of the window, counting what it dropped
        (:attr:`usb_cut`), which the engine hands on as an overflow interval, as the device marks one."""
        self.usb_cut = None
        total = sum(a.size for a in out.values())
        capacity = self.model.max_rate_hz * (t1 - t0) / PS_PER_S
        if total <= capacity or total == 0:
            return out
        self.overflows += 1
        cut_at = t0 + int((t1 - t0) * capacity / total)
        kept = {ch: int(np.searchsorted(a, cut_at)) for ch, a in out.items()}
        self.usb_cut = (cut_at, {ch: out[ch].size - n for ch, n in kept.items() if out[ch].size > n})
        return {ch: a[: kept[ch]] for ch, a in out.items()}


class Clock:
    """Simulated time source: wall clock since start, or a virtual clock."""

    def __init__(self, mode: str):
        if mode not in ("realtime", "virtual"):
            raise ValueError(f"clock must be 'realtime' or 'virtual', got {mode!r}")
        self.mode = mode
        self._origin = time.monotonic()

    def now_ps(self) -> int:
        return int((time.monotonic() - self._origin) * PS_PER_S)


class TagEngine:
    """Drives an :class:`InputStage` and feeds chunks to a consumer callback."""

    def __init__(
        self,
        stage: InputStage,
        wanted: Callable[[], set[int]],
        consume: Callable[[Chunk], None],
        busy: Callable[[], bool],
        clock: str = "realtime",
    ):
        self.stage = stage
        self._wanted = wanted
        self._consume = consume
        self._busy = busy
        self.clock = Clock(clock)
        self.processed_ps = 0
        # Simulated ps the stage generates per wall second, measured (a moving average); None until measured.
        self.generation_ps_per_s: float | None = None
        self.tags_per_ps = 0.0  # the wanted channels' tag rate in the last generated window
        self.buffer_tags = DEVICE_BUFFER_TAGS  # the tagger's setHardwareBufferSize() changes it
        self._lock = threading.RLock()
        self._progress = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taggerhub-sim-engine", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def poke(self) -> None:
        """Wake the engine: a measurement started or a sync is waiting."""
        self._wake.set()

    def step(self, t_end: int) -> None:
        """Process simulated time up to ``t_end`` (under the engine lock)."""
        with self._lock:
            while self.processed_ps < t_end:
                t0 = self.processed_ps
                if self.clock.mode == "realtime" and self._buffer_full(self.clock.now_ps() - t0):
                    self._overflow(t0)
                    continue
                t1 = min(t_end, t0 + (VIRTUAL_CHUNK_PS if self.clock.mode == "virtual" else REALTIME_MAX_CHUNK_PS))
                wanted = self._wanted()
                tags = self._generate(wanted, t0, t1)
                cut = self.stage.usb_cut
                if cut is None:
                    self._consume(Chunk(t0, t1, tags))
                else:  # past the USB limit: the tags up to the cut, then what was dropped as an overflow interval
                    self._consume(Chunk(t0, cut[0], tags))
                    self._consume(Chunk(cut[0], t1, {}, cut[1]))
                self.processed_ps = t1
                self._progress.notify_all()

    def _buffer_full(self, lag_ps: int) -> bool:
        """Whether the device would have overflowed by now: the lag is long and holds more tags than its buffer."""
        return lag_ps > REALTIME_MAX_LAG_PS and lag_ps * self.tags_per_ps > min(self.buffer_tags, ENGINE_BACKLOG_TAGS)

    def _generate(self, wanted: set[int], t0: int, t1: int) -> dict[int, np.ndarray]:
        """The stage's tags for [t0, t1), timing it to keep :attr:`generation_ps_per_s` current."""
        self.stage.usb_cut = None  # set again by this window's process() if it hits the USB limit
        if not wanted:
            self.tags_per_ps = 0.0
            return {}
        began = time.perf_counter()
        tags = self.stage.process(wanted, t0, t1)
        spent = time.perf_counter() - began
        self.tags_per_ps = sum(a.size for a in tags.values()) / max(t1 - t0, 1)
        if spent > 0:
            speed = (t1 - t0) / spent
            last = self.generation_ps_per_s
            self.generation_ps_per_s = speed if last is None else last + SPEED_SMOOTHING * (speed - last)
        return tags

    def _overflow(self, t0: int) -> None:
        """The measurements fell behind the wall clock: drop tags up to now as one overflow interval.

        Tags are still generated (without the measurements) so that the missed counts, dead time and divider
        state stay right; the measurements get one empty chunk that says what was missed. Only as much of the
        window as the engine generates in OVERFLOW_BUDGET_S is generated (its end); the counts are scaled.
        """
        t_end = self.clock.now_ps()
        speed = self.generation_ps_per_s
        affordable = OVERFLOW_MIN_SAMPLE_PS if speed is None else max(OVERFLOW_MIN_SAMPLE_PS, speed * OVERFLOW_BUDGET_S)
        t = max(t0, t_end - int(affordable))
        scale = (t_end - t0) / (t_end - t)
        missed: dict[int, int] = {}
        while t < t_end:
            t1 = min(t_end, t + REALTIME_MAX_CHUNK_PS)
            for ch, tags in self._generate(self._wanted(), t, t1).items():
                missed[ch] = missed.get(ch, 0) + int(tags.size)
            cut = self.stage.usb_cut
            for ch, n in (cut[1] if cut else {}).items():  # the USB limit's drops are missed as well
                missed[ch] = missed.get(ch, 0) + n
            t = t1
        if scale != 1.0:
            missed = {ch: round(n * scale) for ch, n in missed.items()}
        self.stage.overflows += 1
        self._consume(Chunk(t0, t_end, {}, missed))
        self.processed_ps = t_end
        self._progress.notify_all()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self.clock.mode == "realtime":
                    self.step(self.clock.now_ps())
                    self._wake.wait(REALTIME_TICK_S)
                    self._wake.clear()
                elif self._busy():
                    self.step(self.processed_ps + VIRTUAL_CHUNK_PS)
                else:
                    self._wake.wait(0.05)
                    self._wake.clear()
        except BaseException as exc:  # surfaced by sync() instead of dying silently
            self.error = exc
            raise

    def now_ps(self) -> int:
        return self.clock.now_ps() if self.clock.mode == "realtime" else self.processed_ps

    def sync(self, timeout_s: float = -1) -> bool:
        """Wait until every tag up to now has reached the measurements."""
        target = self.now_ps()
        deadline = None if timeout_s is None or timeout_s < 0 else time.monotonic() + timeout_s
        with self._lock:
            while self.processed_ps < target:
                if self.error is not None:
                    raise RuntimeError(f"simulator engine failed: {self.error}")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._wake.set()
                self._progress.wait(0.05 if remaining is None else min(0.05, remaining))
        return True
