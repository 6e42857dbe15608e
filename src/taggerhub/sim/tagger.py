"""The simulated tagger objects: ``TimeTaggerBase`` and the device class ``TimeTagger``.

A tagger owns one :class:`~taggerhub.sim.engine.TagEngine` and the list of
measurements attached to it. Setters validate against the model's ranges and
raise ``ValueError`` with the offending value, as the vendor library does for
out-of-range arguments.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from .engine import Chunk, InputStage, TagEngine
from .enums import CHANNEL_UNUSED, ChannelEdge, Resolution, TestSignalSource
from .models import ModelSpec
from .signals import SignalSource

if TYPE_CHECKING:
    from .iterators import IteratorBase


class TimeTaggerBase:
    """What every tagger offers: channels, delays, dead time, sync, measurements."""

    _autostart = True  # measurements start on creation (not on a SynchronizedMeasurements proxy)

    def __init__(self, model: ModelSpec, sources: list[SignalSource], clock: str, seed: int | None):
        self._model = model
        self._stage = InputStage(model, sources, np.random.default_rng(seed or None))
        self._lock = threading.RLock()
        # Weak references, so a measurement nobody holds any more is freed, as in the vendor library.
        self._iterator_refs: list[weakref.ref[IteratorBase]] = []
        self._virtual_channels: set[int] = set()
        self._next_virtual = model.channels + 1000
        self._fence = 0
        self._engine = TagEngine(
            self._stage, self._registered_channels, self._dispatch, self._any_running, clock=clock
        )
        self._freed = False
        self._engine.start()

    # -- wiring with measurements ---------------------------------------------------
    @property
    def _iterators(self) -> list[IteratorBase]:
        with self._lock:
            alive = [it for it in (ref() for ref in self._iterator_refs) if it is not None]
            if len(alive) != len(self._iterator_refs):
                self._iterator_refs = [weakref.ref(it) for it in alive]
            return alive

    def _attach(self, iterator: IteratorBase) -> None:
        with self._lock:
            self._check_open()
            self._iterator_refs.append(weakref.ref(iterator))

    def _detach(self, iterator: IteratorBase) -> None:
        with self._lock:
            self._iterator_refs = [r for r in self._iterator_refs if r() is not None and r() is not iterator]

    def _allocate_virtual_channel(self) -> int:
        with self._lock:
            channel = self._next_virtual
            self._next_virtual += 1
            self._virtual_channels.add(channel)
            return channel

    def _registered_channels(self) -> set[int]:
        with self._lock:
            wanted: set[int] = set()
            for it in self._iterators:
                wanted |= it._wanted_channels()
            return {c for c in wanted if c in self._stage.inputs}

    def _any_running(self) -> bool:
        with self._lock:
            return any(it._running for it in self._iterators)

    def _dispatch(self, chunk: Chunk) -> None:
        with self._lock:
            iterators = self._iterators
        # Virtual channels first, in creation order, so measurements see their output.
        for it in iterators:
            if it._is_virtual:
                it._feed(chunk)
        for it in iterators:
            if not it._is_virtual:
                it._feed(chunk)

    def _check_open(self) -> None:
        if self._freed:
            raise RuntimeError("this Time Tagger has been freed; create a new one with createTimeTagger()")

    def _check_channel(self, channel: int, physical: bool = False) -> int:
        channel = int(channel)
        if channel in self._stage.inputs:
            return channel
        if not physical and (channel in self._virtual_channels or channel == CHANNEL_UNUSED):
            return channel
        raise ValueError(
            f"invalid channel {channel}: {self._model.name} has channels 1..{self._model.channels} "
            f"(rising edges) and -1..-{self._model.channels} (falling edges)"
        )

    def _free(self) -> None:
        with self._lock:
            if self._freed:
                return
            self._freed = True
            iterators = list(self._iterators)
        for it in iterators:
            it._release()
        self._engine.stop()

    # -- vendor API -----------------------------------------------------------------
    def setInputDelay(self, channel: int, delay: int) -> None:
        """Set the delay of a channel in picoseconds (may be negative)."""
        state = self._stage.inputs[self._check_channel(channel, physical=True)]
        delay = int(delay)
        if abs(delay) > 2_000_000_000:
            raise ValueError(f"input delay {delay} ps is outside the supported range of +-2 ms")
        state.delay_ps = delay

    def getInputDelay(self, channel: int) -> int:
        """Return the delay of a channel in picoseconds."""
        return self._stage.inputs[self._check_channel(channel, physical=True)].delay_ps

    def setDelaySoftware(self, channel: int, delay: int) -> None:
        """Set the software delay of a channel in picoseconds."""
        self.setInputDelay(channel, delay)

    def getDelaySoftware(self, channel: int) -> int:
        """Return the software delay of a channel in picoseconds."""
        return self.getInputDelay(channel)

    def setDeadtime(self, channel: int, deadtime: int) -> int:
        """Set the dead time of a channel in picoseconds; return the value applied after rounding."""
        state = self._stage.inputs[self._check_channel(channel, physical=True)]
        deadtime = int(deadtime)
        spec = self._model
        if deadtime > spec.deadtime_max_ps:
            raise ValueError(f"dead time {deadtime} ps exceeds the maximum of {spec.deadtime_max_ps} ps "
                             f"on the {spec.name}")
        if spec.deadtime_step_ps:
            deadtime = round(deadtime / spec.deadtime_step_ps) * spec.deadtime_step_ps
        state.deadtime_ps = max(spec.deadtime_min_ps, deadtime)
        return state.deadtime_ps

    def getDeadtime(self, channel: int) -> int:
        """Return the dead time of a channel in picoseconds."""
        return self._stage.inputs[self._check_channel(channel, physical=True)].deadtime_ps

    def setEventDivider(self, channel: int, divider: int) -> None:
        """Let only every ``divider``-th event of a channel through (1..65535)."""
        state = self._stage.inputs[self._check_channel(channel, physical=True)]
        divider = int(divider)
        if not 1 <= divider <= 65535:
            raise ValueError(f"event divider must be 1..65535, got {divider}")
        state.event_divider = divider
        state.divider_count = 0

    def getEventDivider(self, channel: int) -> int:
        """Return the event divider of a channel."""
        return self._stage.inputs[self._check_channel(channel, physical=True)].event_divider

    def sync(self, timeout: int = -1) -> bool:
        """Wait until every tag up to now has reached all measurements; timeout in ms."""
        self._check_open()
        return self._engine.sync(-1 if timeout is None or timeout < 0 else timeout / 1000.0)

    def getFence(self, alloc_fence: bool = True) -> int:
        """Return a fence number that ``waitForFence`` can wait for."""
        with self._lock:
            if alloc_fence:
                self._fence += 1
            return self._fence

    def waitForFence(self, fence: int, timeout: int = -1) -> bool:
        """Wait until tags issued before the fence have been processed."""
        return self.sync(timeout)

    def getOverflows(self) -> int:
        """Return the number of overflows since start-up or the last clear."""
        return int(self._stage.overflows)

    def clearOverflows(self) -> None:
        """Reset the overflow counter."""
        self._stage.overflows = 0

    def getOverflowsAndClear(self) -> int:
        """Return the overflow count and reset it."""
        count = self.getOverflows()
        self.clearOverflows()
        return count

    def getConfiguration(self) -> dict[str, Any]:
        """Return the complete settings and the measurements attached (a dict, as in Python)."""
        with self._lock:
            channels = {
                str(ch): {
                    "test signal": s.test_signal,
                    "trigger level": s.trigger_level_v,
                    "input delay": s.delay_ps,
                    "deadtime": s.deadtime_ps,
                    "event divider": s.event_divider,
                }
                for ch, s in sorted(self._stage.inputs.items())
            }
            measurements = [it.getConfiguration() for it in self._iterators]
        return {
            "model": self._model.name,
            "serial": getattr(self, "_serial", ""),
            "simulated": True,
            "test signal divider": self._stage.test_signal_divider,
            "channels": channels,
            "measurements": measurements,
        }

    def getChannelList(self, type: int = ChannelEdge.All) -> list[int]:
        """Return the channel numbers of the given edge type (rising, falling or all)."""
        n = self._model.channels
        type = int(type)
        rising = list(range(1, n + 1))
        falling = [-c for c in rising]
        if type & ChannelEdge.Rising and not type & ChannelEdge.Falling:
            return rising
        if type & ChannelEdge.Falling and not type & ChannelEdge.Rising:
            return falling
        return [c for pair in zip(rising, falling, strict=True) for c in pair]

    def isUnusedChannel(self, channel: int) -> bool:
        """Return whether ``channel`` is the CHANNEL_UNUSED placeholder."""
        return int(channel) == CHANNEL_UNUSED

    def isChannelRegistered(self, channel: int) -> bool:
        """Return whether a measurement currently receives tags of ``channel``."""
        return int(channel) in self._registered_channels()


class TimeTagger(TimeTaggerBase):
    """A (simulated) Time Tagger device."""

    def __init__(self, serial: str, model: ModelSpec, sources: list[SignalSource],
                 clock: str = "realtime", seed: int | None = None,
                 resolution: Resolution = Resolution.Standard):
        self._serial = serial
        self._resolution = Resolution(resolution)
        super().__init__(model, sources, clock, seed)

    def getSerial(self) -> str:
        """Return the serial number of the device."""
        return self._serial

    def getModel(self) -> str:
        """Return the model name."""
        return self._model.name

    def getFirmwareVersion(self) -> str:
        """Return the firmware version (of the simulation)."""
        return "SIM-FW-1.0"

    def getPcbVersion(self) -> str:
        """Return the PCB version (of the simulation)."""
        return "SIM"

    def getPsPerClock(self) -> int:
        """Return the duration of one internal clock cycle in picoseconds."""
        return self._model.deadtime_min_ps

    def getSensorData(self) -> str:
        """Return the device's sensor readings as text."""
        return "simulated device: board temperature 40.0 C"

    def setTestSignal(self, channel: int | Iterable[int], enabled: bool) -> None:
        """Connect (or disconnect) channels to the internal test signal."""
        channels = [channel] if isinstance(channel, int | np.integer) else list(channel)
        for ch in channels:
            self._stage.inputs[self._check_channel(ch, physical=True)].test_signal = bool(enabled)
            self._stage.inputs[-abs(int(ch))].test_signal = bool(enabled)

    def getTestSignal(self, channel: int) -> bool:
        """Return whether ``channel`` is connected to the internal test signal."""
        return self._stage.inputs[self._check_channel(channel, physical=True)].test_signal

    def setTestSignalDivider(self, divider: int) -> None:
        """Set the test-signal frequency as base clock / divider."""
        divider = int(divider)
        if divider < 1:
            raise ValueError(f"test signal divider must be >= 1, got {divider}")
        self._stage.test_signal_divider = divider

    def getTestSignalDivider(self) -> int:
        """Return the test-signal divider."""
        return self._stage.test_signal_divider

    def setTestSignalSource(self, source: TestSignalSource) -> None:
        """Choose the digital or analog test signal (both are the same in the simulation)."""
        TestSignalSource(source)

    def setTriggerLevel(self, channel: int, voltage: float) -> None:
        """Set the trigger level of an input in volts."""
        ch = self._check_channel(channel, physical=True)
        voltage = float(voltage)
        spec = self._model
        if not spec.trigger_min_v <= voltage <= spec.trigger_max_v:
            raise ValueError(f"trigger level {voltage} V is outside {spec.trigger_min_v}..{spec.trigger_max_v} V "
                             f"of the {spec.name}")
        self._stage.inputs[abs(ch)].trigger_level_v = voltage
        self._stage.inputs[-abs(ch)].trigger_level_v = voltage

    def getTriggerLevel(self, channel: int) -> float:
        """Return the trigger level of an input in volts."""
        return self._stage.inputs[self._check_channel(channel, physical=True)].trigger_level_v

    def getTriggerLevelRange(self) -> list[float]:
        """Return the lowest and highest trigger level in volts."""
        return [self._model.trigger_min_v, self._model.trigger_max_v]

    def reset(self) -> None:
        """Return every setting to its start-up value and drop all measurements."""
        with self._lock:
            iterators = list(self._iterators)
        for it in iterators:
            it._release()
        for state in self._stage.inputs.values():
            state.test_signal = False
            state.trigger_level_v = 0.5
            state.delay_ps = 0
            state.deadtime_ps = self._model.deadtime_min_ps
            state.event_divider = 1
        self._stage.test_signal_divider = self._model.test_signal_default_divider
        self._stage.overflows = 0
