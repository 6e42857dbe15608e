"""Replay of recordings: ``createTimeTaggerVirtual`` and ``TimeTaggerVirtual`` with the vendor's API.

The virtual tagger is a ``TimeTaggerBase`` like a simulated device; only its
tag source differs. :class:`ReplayStage` stands in for the input stage and
hands the recorded tags of the queued files to the same ``TagEngine`` chunk
by chunk, so every measurement and virtual channel runs on a replay exactly
as on a live tagger. :class:`ReplayEngine` paces it: as fast as possible
(speed < 0, the default) or at ``speed`` times real time.

Each queued file is placed on the virtual tagger's own time axis right after
the previous one (or at the current time when the queue was empty): a tag
recorded at ``t`` plays at ``start + t - (recording begin + begin)``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .engine import VIRTUAL_CHUNK_PS, Chunk, InputStage, InputState, TagEngine
from .enums import ChannelEdge
from .models import TIME_TAGGER_ULTRA, ModelSpec
from .recording import RECORD_DTYPE, RECORD_SIZE, RecordCursor, data_files, read_header, record_count
from .signals import PS_PER_S, SignalSource, merge_sorted
from .tagger import TimeTaggerBase

READ_BLOCK = 1 << 16  # records read from disk at a time
DEFAULT_CHANNELS = 18  # the vendor's virtual tagger without a file
REALTIME_TICK_S = 0.002
EMPTY = np.empty(0, dtype=np.int64)


def virtual_model(channels: int) -> ModelSpec:
    """A model without input physics: no jitter, no minimum dead time, no rate limit."""
    return dataclasses.replace(
        TIME_TAGGER_ULTRA, name="Time Tagger Virtual", channels=channels, deadtime_min_ps=0,
        deadtime_step_ps=0, jitter_rms_ps=0.0, max_rate_hz=float("inf"), serial_prefix="VIRT")


def _recorded_channels(path: str | Path) -> tuple[int, list[int]]:
    """(physical channel count of the recording tagger, channels present in the file)."""
    header, _ = read_header(path)
    inputs = [int(c) for c in header.get("configuration", {}).get("channels", {})]
    recorded = [int(c) for c in header.get("channels", [])]
    physical = max((abs(c) for c in inputs), default=0) or max((abs(c) for c in recorded), default=DEFAULT_CHANNELS)
    return physical, recorded


def _last_tag_time(path: Path, offset: int) -> int | None:
    count = record_count(path, offset)
    if count == 0:
        return None
    return int(np.fromfile(path, dtype=RECORD_DTYPE, count=1, offset=offset + (count - 1) * RECORD_SIZE)["time"][0])


@dataclass
class Segment:
    """One queued file: which tags of it to play and where they land on the virtual time axis."""

    ident: int
    cursor: RecordCursor
    file_begin: int  # recording time of the file's start, ps
    file_end: int  # recording time of the file's end, ps
    begin: int  # ps skipped at the start (negative: a pause first)
    duration: int  # ps to play, -1: all
    start: int | None = None  # virtual time at which recording time file_begin + begin plays
    buffered: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=RECORD_DTYPE))  # times already mapped
    exhausted: bool = False  # nothing more to read from the files

    @classmethod
    def open(cls, ident: int, filename: str | Path, begin: int, duration: int) -> Segment:
        files = data_files(filename)
        cursor = RecordCursor(files)
        headers = [h for h, _ in cursor.headers]
        begins = [h["begin_ps"] for h in headers if h.get("begin_ps") is not None]
        ends = [h["end_ps"] for h in headers if h.get("end_ps") is not None]
        if not ends:  # a recording cut short: play up to its last tag
            last = [t for f, (_, off) in zip(files, cursor.headers, strict=True)
                    if (t := _last_tag_time(f, off)) is not None]
            ends = [max(last) + 1] if last else []
        first = min(begins) if begins else 0
        return cls(ident, cursor, first, max(ends) if ends else first, int(begin), int(duration))

    @property
    def offset(self) -> int:
        assert self.start is not None
        return self.start - (self.file_begin + self.begin)

    @property
    def end(self) -> int:
        """Virtual time at which this file has finished playing."""
        assert self.start is not None
        length = self.file_end - self.file_begin - self.begin if self.duration < 0 else self.duration
        return self.start + max(0, length)

    def take(self, t1: int) -> np.ndarray:
        """Records (times on the virtual axis) before ``t1``, within the part of the file to play."""
        first_time = self.file_begin + max(0, self.begin)
        last_time = None if self.duration < 0 else self.file_begin + self.begin + self.duration
        parts = [self.buffered]
        latest = int(self.buffered["time"][-1]) if self.buffered.size else None
        while (latest is None or latest < t1) and not self.exhausted:
            block = self.cursor.read(READ_BLOCK)
            if block.size == 0 or (last_time is not None and block["time"][-1] >= last_time):
                self.exhausted = True  # the end of the file, or of the part to play
            keep = block["time"] >= first_time
            if last_time is not None:
                keep &= block["time"] < last_time
            block = block[keep]
            block["time"] += self.offset
            parts.append(block)
            if block.size:
                latest = int(block["time"][-1])
        records = np.concatenate(parts) if len(parts) > 1 else parts[0]
        cut = int(np.searchsorted(records["time"], t1))
        self.buffered = records[cut:]
        return records[:cut]

    def done(self, t1: int) -> bool:
        """Whether everything of this file has played by ``t1``."""
        return self.end <= t1 and self.exhausted and not self.buffered.size


class ReplayStage:
    """The virtual tagger's tag source: the recorded tags of the queued files, per channel and chunk."""

    def __init__(self, model: ModelSpec, extra_channels: list[int]):
        self.model = model
        self.inputs: dict[int, InputState] = {}
        for ch in range(1, model.channels + 1):
            self.inputs[ch] = InputState(deadtime_ps=0)
            self.inputs[-ch] = InputState(deadtime_ps=0)
        for ch in extra_channels:  # virtual channels of the recording tagger, replayed as inputs
            self.inputs.setdefault(int(ch), InputState(deadtime_ps=0))
        self.test_signal_divider = model.test_signal_default_divider
        self.overflows = 0
        self.usb_cut: tuple[int, dict[int, int]] | None = None  # a replay never hits the USB limit
        self.filter_trigger: list[int] = []
        self.filter_filtered: list[int] = []
        self.queue: list[Segment] = []
        self.completed: set[int] = set()
        self.next_id = 1
        self._played_until = 0  # virtual end of the last finished file

    def add(self, filename: str | Path, begin: int, duration: int, clear: bool) -> int:
        """Queue a file and return its ID (``clear`` drops what is queued first)."""
        segment = Segment.open(self.next_id, filename, begin, duration)
        if clear:
            self.clear_queue()
        self.next_id += 1
        self.queue.append(segment)
        return segment.ident

    def clear_queue(self) -> None:
        for segment in self.queue:
            self.completed.add(segment.ident)
        self.queue.clear()
        for state in self.inputs.values():
            state.pending = EMPTY

    # The (vendor-deprecated) test signal of a virtual tagger: the same clock as the hardware's.
    test_signal_period_ps = InputStage.test_signal_period_ps
    _test_signal = InputStage._test_signal

    def busy(self) -> bool:
        """Whether tags remain to be played (queued files, delayed tags, or an endless test signal)."""
        return (bool(self.queue) or any(s.pending.size for s in self.inputs.values())
                or any(s.test_signal for s in self.inputs.values()))

    def process(self, wanted: set[int], t0: int, t1: int) -> dict[int, np.ndarray]:
        """The recorded tags of the ``wanted`` channels that play in [t0, t1)."""
        min_delay = min((s.delay_ps for s in self.inputs.values()), default=0)
        lookahead = -min(0, min_delay)  # negative delays need tags from a little later
        taken: list[np.ndarray] = []
        while self.queue:
            segment = self.queue[0]
            if segment.start is None:
                segment.start = max(self._played_until, t0) + max(0, -segment.begin)
            taken.append(segment.take(t1 + lookahead))
            if not segment.done(t1 + lookahead):
                break
            self._played_until = segment.end
            self.completed.add(segment.ident)
            self.queue.pop(0)
        records = np.concatenate(taken) if len(taken) > 1 else (taken[0] if taken else None)
        out: dict[int, np.ndarray] = {}
        for channel in wanted:
            state = self.inputs.get(channel)
            if state is None:
                continue
            raw = records["time"][records["channel"] == channel] if records is not None else EMPTY
            if state.test_signal:
                raw = merge_sorted([raw, self._test_signal(t0, t1, falling=channel < 0)])
            shifted = raw + state.delay_ps if state.delay_ps else raw
            if state.pending.size:
                shifted = np.concatenate([state.pending, shifted])
                shifted.sort(kind="stable")
            cut = int(np.searchsorted(shifted, t1))
            state.pending = shifted[cut:]
            emitted = InputStage._apply_deadtime(state, shifted[:cut])
            out[channel] = InputStage._apply_divider(state, emitted)
        return out


class ReplayEngine(TagEngine):
    """Paces a :class:`ReplayStage`: as fast as possible (speed < 0) or ``speed`` times real time."""

    def __init__(self, stage: ReplayStage, wanted: Callable[[], set[int]], consume: Callable[[Chunk], None]):
        super().__init__(stage, wanted, consume, busy=lambda: False, clock="virtual")  # type: ignore[arg-type]
        self.replay = stage
        self.speed = -1.0
        self.paused = False
        self._anchor: tuple[float, int] | None = None  # (wall clock, virtual time) of the pacing origin

    def set_speed(self, speed: float) -> None:
        speed = float(speed)
        if 0.0 <= speed < 0.1:
            raise ValueError(f"replay speeds between 0.0 and 0.1 are not supported, got {speed}")
        with self._lock:
            self.speed = speed
            self._anchor = None
        self.poke()

    def _paced_target(self) -> int:
        now = time.monotonic()
        if self._anchor is None:
            self._anchor = (now, self.processed_ps)
        wall, virtual = self._anchor
        return virtual + int((now - wall) * self.speed * PS_PER_S)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    active = not self.paused and self.replay.busy()
                    if not active:
                        self._anchor = None
                    elif self.speed < 0:
                        self.step(self.processed_ps + VIRTUAL_CHUNK_PS)
                        continue
                    else:
                        self.step(self._paced_target())
                self._wake.wait(REALTIME_TICK_S if active else 0.05)
                self._wake.clear()
        except BaseException as exc:  # surfaced by sync() and waitForCompletion()
            self.error = exc
            raise

    def now_ps(self) -> int:
        with self._lock:
            if self.paused or not self.replay.busy() or self.speed < 0:
                return self.processed_ps
            return self._paced_target()


class TimeTaggerVirtual(TimeTaggerBase):
    """A tagger whose tags come from recordings; all measurements and virtual channels work on it."""

    def __init__(self, filename: str = "", begin: int = 0, duration: int = -1):
        physical, recorded = _recorded_channels(filename) if filename else (DEFAULT_CHANNELS, [])
        self._recorded = recorded
        model = virtual_model(physical)
        super().__init__(model, [], "virtual", None)
        # New virtual channels must not take the numbers of the recording tagger's virtual channels.
        self._next_virtual = max([self._next_virtual, *(c + 1 for c in recorded)])
        if filename:
            self._engine.paused = True  # the vendor's createTimeTaggerVirtual(file) waits for run()
            self.appendFile(filename, begin, duration)

    def _new_stage(self, model: ModelSpec, sources: list[SignalSource], seed: int | None) -> ReplayStage:  # type: ignore[override]
        return ReplayStage(model, [c for c in self._recorded if abs(c) > model.channels])

    def _new_engine(self, clock: str) -> ReplayEngine:
        assert isinstance(self._stage, ReplayStage)
        return ReplayEngine(self._stage, self._registered_channels, self._dispatch)

    @property
    def _replay(self) -> ReplayEngine:
        assert isinstance(self._engine, ReplayEngine)
        return self._engine

    def _queue(self, filename: str, begin: int, duration: int, clear: bool) -> int:
        self._check_open()
        if not Path(filename).exists():
            raise FileNotFoundError(f"recording {filename} does not exist")
        with self._engine._lock:
            ident = self._replay.replay.add(filename, begin, duration, clear)
        self._engine.poke()
        return ident

    def setTestSignal(self, channel: int | list[int], enabled: bool) -> None:
        """Feed channels the test signal (deprecated by the vendor in favour of signal generators; kept for
        scripts that still use it): tags play at the replay speed, endlessly, alongside any files."""
        channels = [channel] if isinstance(channel, int | np.integer) else list(channel)
        with self._engine._lock:
            for ch in channels:
                self._stage.inputs[self._check_channel(ch, physical=True)].test_signal = bool(enabled)
                self._stage.inputs[-abs(int(ch))].test_signal = bool(enabled)
        self._engine.poke()

    def getTestSignal(self, channel: int) -> bool:
        """Whether ``channel`` gets the test signal."""
        return self._stage.inputs[self._check_channel(channel, physical=True)].test_signal

    def run(self, speed: float = -1.0) -> list[int]:
        """Start (or continue) the replay at ``speed`` times real time (< 0: as fast as possible)."""
        self._replay.set_speed(speed)
        with self._engine._lock:
            self._replay.paused = False
            queued = [s.ident for s in self._replay.replay.queue]
        self._engine.poke()
        return queued

    def replay(self, file: str, begin: int = 0, duration: int = -1, queue: bool = True) -> int:
        """Play ``file`` (after the queue, or at once with ``queue=False``); return its ID."""
        ident = self._queue(file, begin, duration, clear=not queue)
        with self._engine._lock:
            self._replay.paused = False
        self._engine.poke()
        return ident

    def appendFile(self, filename: str, begin: int = 0, duration: int = -1, clear: bool = False) -> int:
        """Add ``filename`` to the replay queue (``clear``: start a new queue); return its ID."""
        return self._queue(filename, begin, duration, clear)

    def stop(self) -> None:
        """Stop the current file and clear the replay queue."""
        with self._engine._lock:
            self._replay.replay.clear_queue()
            self._engine._progress.notify_all()

    def setReplaySpeed(self, speed: float) -> None:
        """Replay at ``speed`` times real time; < 0: as fast as possible."""
        self._replay.set_speed(speed)

    def getReplaySpeed(self) -> float:
        """Return the replay speed factor."""
        return self._replay.speed

    def waitForCompletion(self, ID: int = 0, timeout: int = -1) -> bool:
        """Block until file ``ID`` (0: every queued file) has been replayed; ``timeout`` in ms, -1 forever."""
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout / 1000.0
        with self._engine._lock:
            while not self._finished(int(ID)):
                if self._engine.error is not None:
                    raise RuntimeError(f"replay failed: {self._engine.error}")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._engine.poke()
                self._engine._progress.wait(0.05 if remaining is None else min(0.05, remaining))
        return True

    def waitUntilFinished(self, ID: int = 0, timeout: int = -1) -> bool:
        """Same as ``waitForCompletion`` (its name since vendor version 2.18)."""
        return self.waitForCompletion(ID, timeout)

    def _finished(self, ident: int) -> bool:
        stage = self._replay.replay
        if ident == 0:
            return not stage.busy()
        return ident in stage.completed or ident >= stage.next_id

    def getChannelList(self, type: int = ChannelEdge.All) -> list[int]:
        """The channels recorded in the initial file (all input channels without one)."""
        channels = self._recorded or super().getChannelList(type)
        type = int(type)
        if type & ChannelEdge.Rising and not type & ChannelEdge.Falling:
            return [c for c in channels if c > 0]
        if type & ChannelEdge.Falling and not type & ChannelEdge.Rising:
            return [c for c in channels if c < 0]
        return list(channels)

    def reset(self) -> None:
        """Stop the replay, clear the queue and return every setting to its default."""
        self.stop()
        with self._lock:
            iterators = list(self._iterators)
        for it in iterators:
            it._release()
        for state in self._stage.inputs.values():
            state.delay_ps = 0
            state.deadtime_ps = 0
            state.event_divider = 1
        self._replay.set_speed(-1.0)

    def getConfiguration(self) -> dict[str, Any]:
        """Settings, measurements and the replay queue."""
        config = super().getConfiguration()
        config.update(model="Time Tagger Virtual", serial="", replay_speed=self._replay.speed)
        return config


def createTimeTaggerVirtual(filename: str = "", begin: int = 0, duration: int = -1) -> TimeTaggerVirtual:
    """Create a virtual tagger replaying ``filename`` (queued; ``run()`` starts it) or an empty one."""
    return TimeTaggerVirtual(str(filename) if filename else "", begin, duration)
