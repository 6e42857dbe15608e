"""The simulated tagger objects: ``TimeTaggerBase`` and the device class ``TimeTagger``.

A tagger owns one :class:`~taggerhub.sim.engine.TagEngine` and the list of
measurements attached to it. Setters validate against the model's ranges and
raise ``ValueError`` with the offending value, as the vendor library does for
out-of-range arguments.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from .engine import Chunk, InputStage, TagEngine
from .enums import CHANNEL_UNUSED, ChannelEdge, Resolution, TestSignalSource
from .models import ModelSpec
from .refclock import ReferenceClockState, SoftwareClockState, start_clock
from .signals import SignalSource

HARDWARE_DELAY_MAX_PS = 2_000_000  # on-board delay line range of the Ultra (the X: 2.5 us, the 20: none)
# Model rules and messages below are the vendor library's own (its docstrings, and the strings and
# exception types in libTimeTagger 2.22.6): std::runtime_error is RuntimeError, invalid_argument ValueError.
HARDWARE_DELAY_MAX_PS_BY_MODEL = {"Time Tagger Ultra": HARDWARE_DELAY_MAX_PS, "Time Tagger X": 2_500_000}
NO_HARDWARE_DELAY = "Hardware input delays are not supported on the Time Tagger 20."
X_ONLY = "This feature is only supported on the Time Tagger X series."
log = logging.getLogger("taggerhub.sim")



class Attached(Protocol):
    """What a tagger needs of the measurements attached to it (IteratorBase provides it)."""

    _running: bool

    def _wanted_channels(self) -> set[int]: ...

    def _feed(self, chunk: Chunk) -> None: ...

    def _release(self) -> None: ...

    def getConfiguration(self) -> Any: ...


class TimeTaggerBase:
    """What every tagger offers: channels, delays, dead time, sync, measurements."""

    _autostart = True  # measurements start on creation (not on a SynchronizedMeasurements proxy)

    def __init__(self, model: ModelSpec, sources: list[SignalSource], clock: str, seed: int | None):
        self._model = model
        self._stage = self._new_stage(model, sources, seed)
        self._lock = threading.RLock()
        # Weak references, so a measurement nobody holds any more is freed, as in the vendor library.
        self._iterator_refs: list[weakref.ref[Attached]] = []
        self._virtual_channels: set[int] = set()
        self._next_virtual = model.channels + 1000
        self._fence = 0
        self._software_delay: dict[int, int] = {}
        self._clock_state: tuple[str, Any, SoftwareClockState] | None = None  # (kind, clock, state object)
        self._hardware_delay: dict[int, int] = {}
        self._engine = self._new_engine(clock)
        self._freed = False
        self._engine.start()

    def _new_stage(self, model: ModelSpec, sources: list[SignalSource], seed: int | None) -> InputStage:
        """Where the tags come from: the simulated inputs (the replaying virtual tagger reads files)."""
        return InputStage(model, sources, np.random.default_rng(seed or None))

    def _new_engine(self, clock: str) -> TagEngine:
        """What paces the stage and hands its chunks to the measurements."""
        return TagEngine(self._stage, self._registered_channels, self._dispatch, self._any_running, clock=clock)

    # -- wiring with measurements ---------------------------------------------------
    @property
    def _iterators(self) -> list[Attached]:
        with self._lock:
            alive = [it for it in (ref() for ref in self._iterator_refs) if it is not None]
            if len(alive) != len(self._iterator_refs):
                self._iterator_refs = [weakref.ref(it) for it in alive]
            return alive

    def _attach(self, iterator: Attached) -> None:
        with self._lock:
            self._check_open()
            self._iterator_refs.append(weakref.ref(iterator))

    def _detach(self, iterator: Attached) -> None:
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
            # Virtual channels alone do not need time to pass (matters for the virtual clock).
            return any(it._running and not it._is_virtual for it in self._iterators)

    def _dispatch(self, chunk: Chunk) -> None:
        with self._lock:
            iterators = self._iterators
        # Virtual channels first, in creation order, so measurements see their output.
        for virtual in (True, False):
            for it in iterators:
                if it._is_virtual is virtual:
                    try:
                        it._feed(chunk)
                    except Exception as exc:  # one failing measurement must not stop the others
                        it._fail(exc)

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

    def __enter__(self) -> TimeTaggerBase:
        return self

    def __exit__(self, *exc: object) -> bool:
        """``with createTimeTagger() as tagger:`` frees the tagger at the end, as the vendor's does."""
        self._free()
        return False

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
        """Set the delay of a channel in ps: on board when in range (not on the Time Tagger 20), else in software."""
        channel = self._check_channel(channel, physical=True)
        delay = int(delay)
        if abs(delay) <= HARDWARE_DELAY_MAX_PS_BY_MODEL.get(self._model.name, -1):
            self._software_delay[channel] = 0
            self.setDelayHardware(channel, delay)
        else:
            self._hardware_delay[channel] = 0
            self.setDelaySoftware(channel, delay)

    def getInputDelay(self, channel: int) -> int:
        """Return the total (on-board plus software) delay of a channel in picoseconds."""
        return self._stage.inputs[self._check_channel(channel, physical=True)].delay_ps

    def setDelaySoftware(self, channel: int, delay: int) -> None:
        """Set the software delay of a channel in picoseconds."""
        channel = self._check_channel(channel, physical=True)
        delay = int(delay)
        if abs(delay) > 2_000_000_000:
            raise ValueError(f"software delay {delay} ps is outside the supported range of +-2 ms")
        self._software_delay[channel] = delay
        self._stage.inputs[channel].delay_ps = delay + self._hardware_delay.get(channel, 0)

    def getDelaySoftware(self, channel: int) -> int:
        """Return the software delay of a channel in picoseconds."""
        return self._software_delay.get(self._check_channel(channel, physical=True), 0)

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
            # The vendor's configuration lists the devices behind a tagger; scripts read the model from it.
            "devices": [{"model": self._model.name, "serial": getattr(self, "_serial", "")}],
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

    def getDeadtimeRange(self, channel: int) -> list[int]:
        """Return the smallest and largest dead time of a channel in ps."""
        self._check_channel(channel, physical=True)
        return [self._model.deadtime_min_ps, self._model.deadtime_max_ps]

    def setDelayHardware(self, channel: int, delay: int) -> None:
        """Set the on-board delay of a channel in ps (the simulation adds it to the input delay)."""
        lo, hi = self.getDelayHardwareRange(channel)
        delay = int(delay)
        if not lo <= delay <= hi:
            raise ValueError(f"hardware delay {delay} ps is outside {lo}..{hi} ps")
        self._hardware_delay[int(channel)] = delay
        self._stage.inputs[int(channel)].delay_ps = delay + self._software_delay.get(int(channel), 0)

    def getDelayHardware(self, channel: int) -> int:
        """Return the on-board delay of a channel in ps."""
        self.getDelayHardwareRange(channel)  # raises on the Time Tagger 20, as the vendor's does
        return self._hardware_delay.get(int(channel), 0)

    def getDelayHardwareRange(self, channel: int) -> list[int]:
        """Return the smallest and largest on-board delay in ps (Ultra +-2 us, X +-2.5 us, none on the 20)."""
        self._check_channel(channel, physical=True)
        limit = HARDWARE_DELAY_MAX_PS_BY_MODEL.get(self._model.name)
        if limit is None:
            raise ValueError(NO_HARDWARE_DELAY)
        return [-limit, limit]

    def getInvertedChannel(self, channel: int) -> int:
        """Return the channel of the other edge of the same input (CHANNEL_UNUSED if there is none)."""
        channel = int(channel)
        return -channel if channel in self._stage.inputs else CHANNEL_UNUSED

    def getRegistrations(self, channel: int) -> int:
        """Return how many measurements and virtual channels receive tags of ``channel``."""
        channel = int(channel)
        return sum(channel in it._wanted_channels() for it in self._iterators)

    def setConditionalFilter(self, trigger: list[int], filtered: list[int]) -> None:
        """Drop tags on ``filtered`` channels unless a ``trigger`` tag came since the channel's previous tag."""
        trigger = [self._check_channel(c, physical=True) for c in trigger]
        filtered = [self._check_channel(c, physical=True) for c in filtered]
        if bool(trigger) != bool(filtered):
            raise ValueError("setConditionalFilter needs both trigger and filtered channels, or neither")
        if set(trigger) & set(filtered):
            raise ValueError(f"channels {sorted(set(trigger) & set(filtered))} cannot be trigger and filtered")
        with self._engine._lock:
            self._stage.filter_trigger = trigger
            self._stage.filter_filtered = filtered

    def clearConditionalFilter(self) -> None:
        """Switch the conditional filter off."""
        self.setConditionalFilter([], [])

    def getConditionalFilterTrigger(self) -> list[int]:
        """Return the trigger channels of the conditional filter."""
        return list(self._stage.filter_trigger)

    def getConditionalFilterFiltered(self) -> list[int]:
        """Return the channels the conditional filter acts on."""
        return list(self._stage.filter_filtered)

    # -- software-defined reference clock (see refclock.py) ---------------------------
    def setSoftwareClock(self, input_channel: int, input_frequency: float = 10000000.0,
                         averaging_periods: float = 1000, wait_until_locked: bool = True) -> None:
        """Use ``input_channel`` as the clock of the time base; ideal clock tags appear on a virtual channel."""
        self.disableSoftwareClock()
        clock = start_clock(self, input_channel, input_frequency, wait_until_locked)
        self._clock_state = ("software", clock, SoftwareClockState(clock, averaging_periods))

    def disableSoftwareClock(self) -> None:
        """Switch the software clock off."""
        if self._clock_state is not None:
            self._clock_state[1]._release()
            self._clock_state = None

    def getSoftwareClockState(self) -> SoftwareClockState:
        """Return the software clock's configuration and lock state."""
        state = self._clock_state
        return state[2] if state is not None and state[0] == "software" else SoftwareClockState(None)

    def setReferenceClock(self, clock_channel: int, clock_frequency: float = 10e6, time_constant: float = 1e-3,
                          synchronization_channel: int = CHANNEL_UNUSED, synchronization_offset: int = 0,
                          wait_until_locked: bool = True) -> None:
        """Use ``clock_channel`` as the reference clock; ideal clock tags appear on a virtual channel."""
        if int(synchronization_channel) != CHANNEL_UNUSED:
            self._check_channel(synchronization_channel, physical=True)
        self.disableReferenceClock()
        divider = self.getEventDivider(clock_channel)
        clock = start_clock(self, clock_channel, clock_frequency, wait_until_locked, divider)
        self._clock_state = ("reference", clock, ReferenceClockState(
            clock, float(time_constant), synchronization_channel, synchronization_offset, divider))

    def disableReferenceClock(self) -> None:
        """Switch the reference clock off."""
        self.disableSoftwareClock()

    def getReferenceClockState(self) -> ReferenceClockState:
        """Return the reference clock's configuration and lock state."""
        state = self._clock_state
        return state[2] if state is not None and state[0] == "reference" else ReferenceClockState(None)

    def xtra_setAutoStart(self, auto_start: bool) -> None:
        """Choose whether new measurements and virtual channels start on creation."""
        self._autostart = bool(auto_start)

    def xtra_getAutoStart(self) -> bool:
        """Return whether new measurements and virtual channels start on creation."""
        return bool(self._autostart)

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
                 resolution: Resolution = Resolution.Standard,
                 channel_settings: dict[int, dict[str, Any]] | None = None):
        self._serial = serial
        self._resolution = Resolution(resolution)
        if self._resolution != Resolution.Standard and model.name == "Time Tagger 20":
            raise RuntimeError("The HighRes mode is not supported on the Time Tagger 20.")
        self._device_settings = _default_device_settings()
        self._startup_channels = channel_settings or {}
        super().__init__(model, sources, clock, seed)
        try:
            self._apply_startup_channels()
        except ValueError as exc:
            self._free()
            raise ValueError(f"simulated device {serial}: {exc}") from None

    def _apply_startup_channels(self) -> None:
        """Apply the lab file's per-channel settings through the public setters."""
        for channel, values in self._startup_channels.items():
            setters = {
                "test_signal": lambda v, c=channel: self.setTestSignal(c, v),
                "trigger_level_v": lambda v, c=channel: self.setTriggerLevel(c, v),
                "delay_ps": lambda v, c=channel: self.setInputDelay(c, v),
                "deadtime_ps": lambda v, c=channel: self.setDeadtime(c, v),
                "event_divider": lambda v, c=channel: self.setEventDivider(c, v),
            }
            for key, value in values.items():
                setters[key](value)

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

    def getSensorData(self) -> dict[str, Any]:
        """Return the device's sensor readings (a dict, as the vendor's Python wrapper does)."""
        return {"simulated": True, "board temperature": 40.0}

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
        """Choose the digital or analog test signal (same tags here); Analog exists on the Time Tagger X only."""
        source = TestSignalSource(int(source))
        if source != TestSignalSource.Digital and self._model.name != "Time Tagger X":
            raise RuntimeError("The Analog test signal source is only supported on the Time Tagger X series "
                               "since hardware revision v1.3.")
        self._device_settings["test_signal_source"] = source

    def setTriggerLevel(self, channel: int, voltage: float) -> None:
        """Set the trigger level of an input in volts; out of range, the vendor clamps it and logs a warning."""
        ch = self._check_channel(channel, physical=True)
        voltage = float(voltage)
        spec = self._model
        if voltage > spec.trigger_max_v or voltage < spec.trigger_min_v:
            side, voltage = ("max", spec.trigger_max_v) if voltage > spec.trigger_max_v else ("min", spec.trigger_min_v)
            log.warning("Trigger level out of range. Setting to %s device value: %.3f V.", side, voltage)
        self._stage.inputs[abs(ch)].trigger_level_v = voltage
        self._stage.inputs[-abs(ch)].trigger_level_v = voltage

    def getTriggerLevel(self, channel: int) -> float:
        """Return the trigger level of an input in volts."""
        return self._stage.inputs[self._check_channel(channel, physical=True)].trigger_level_v

    def getTriggerLevelRange(self, channel: int) -> list[float]:
        """Return the lowest and highest trigger level of a channel in volts."""
        self._check_channel(channel, physical=True)
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
        self._stage.filter_trigger, self._stage.filter_filtered = [], []
        self._software_delay.clear()
        self._hardware_delay.clear()
        self.disableReferenceClock()
        self._device_settings = _default_device_settings()
        self._engine.buffer_tags = self._device_settings["buffer"]
        self._apply_startup_channels()

    # -- device settings without an effect on the simulated tags ------------------------
    # They are stored, validated and reported back, so scripts that set them run unchanged.
    def _physical_input(self, channel: int) -> int:
        return abs(self._check_channel(channel, physical=True))

    def getTestSignalSource(self) -> TestSignalSource:
        """Return the test signal source last set."""
        return self._device_settings["test_signal_source"]

    def getDACRange(self) -> list[float]:
        """Return the lowest and highest trigger-level DAC voltage."""
        return [self._model.trigger_min_v, self._model.trigger_max_v]

    def setHardwareBufferSize(self, size: int) -> None:
        """Set the on-board buffer size in tags (32 k to 512 M)."""
        size = int(size)
        if not 32 * 1024 <= size <= 512 * 1024 * 1024:
            raise ValueError(f"hardware buffer size must be 32 kTags..512 MTags, got {size}")
        self._device_settings["buffer"] = size
        self._engine.buffer_tags = size  # how long the engine may lag before it overflows

    def getHardwareBufferSize(self) -> int:
        """Return the on-board buffer size in tags."""
        return self._device_settings["buffer"]

    def setStreamBlockSize(self, max_events: int, max_latency: int) -> None:
        """Set the block size (events) and latency (ms) of the data stream."""
        max_events, max_latency = int(max_events), int(max_latency)
        if max_events < 1 or max_latency < 1:
            raise ValueError(f"max_events and max_latency must be >= 1, got {max_events} and {max_latency}")
        self._device_settings["block"] = (max_events, max_latency)

    def getStreamBlockSizeEvents(self) -> int:
        """Return the stream block size in events."""
        return self._device_settings["block"][0]

    def getStreamBlockSizeLatency(self) -> int:
        """Return the stream latency in ms."""
        return self._device_settings["block"][1]

    def setInputHysteresis(self, channel: int, value: int) -> None:
        """Set the input hysteresis in mV (Time Tagger X: 1, 20 or 70)."""
        self._only_on_x("Configurable hysteresis is only supported on the Time Tagger X series.", "setInputHysteresis")
        if int(value) not in (1, 20, 70):
            raise ValueError(f"input hysteresis must be 1, 20 or 70 mV, got {value}")
        self._device_settings["hysteresis"][self._physical_input(channel)] = int(value)

    def getInputHysteresis(self, channel: int) -> int:
        """Return the input hysteresis in mV (Time Tagger X only)."""
        self._only_on_x(X_ONLY, "getInputHysteresis")
        return self._device_settings["hysteresis"].get(self._physical_input(channel), 20)

    def setInputImpedanceHigh(self, channel: int, high_impedance: bool) -> None:
        """Switch an input to high impedance (Time Tagger X only)."""
        self._only_on_x("High impedance mode is only supported on the Time Tagger X series.", "setInputImpedanceHigh")
        self._device_settings["high_z"][self._physical_input(channel)] = bool(high_impedance)

    def getInputImpedanceHigh(self, channel: int) -> bool:
        """Return whether an input is high impedance (Time Tagger X only)."""
        self._only_on_x(X_ONLY, "getInputImpedanceHigh")
        return self._device_settings["high_z"].get(self._physical_input(channel), False)

    def setInputMux(self, channel: int, mux_mode: int) -> None:
        """Set the input multiplexer mode (0..4)."""
        if not 0 <= int(mux_mode) <= 4:
            raise ValueError(f"mux_mode must be 0..4, got {mux_mode}")
        self._device_settings["mux"][self._physical_input(channel)] = int(mux_mode)

    def getInputMux(self, channel: int) -> int:
        """Return the input multiplexer mode."""
        return self._device_settings["mux"].get(self._physical_input(channel), 0)

    def setNormalization(self, channels: list[int], state: bool) -> None:
        """Enable or disable the Gaussian normalisation of the detection jitter."""
        for ch in [channels] if isinstance(channels, int | np.integer) else channels:
            self._device_settings["normalization"][self._physical_input(ch)] = bool(state)

    def getNormalization(self, channel: int) -> bool:
        """Return whether the jitter normalisation is on."""
        return self._device_settings["normalization"].get(self._physical_input(channel), True)

    def setHardwareDelayCompensationActive(self, use_compensation: bool) -> None:
        """Switch the fixed per-channel delay compensation on or off."""
        self._device_settings["compensation"] = bool(use_compensation)

    def getHardwareDelayCompensation(self, channel: int) -> int:
        """Return the delay compensation applied to a channel in ps (none in the simulation)."""
        self._physical_input(channel)
        return 0

    def setInternalClockTrim(self, frequency_offset_ppm: float) -> None:
        """Set a small frequency offset of the internal clock in ppm (Time Tagger X from revision 1.4, +-50 ppm)."""
        self._only_on_x("This feature is only supported on the Time Tagger X series with hardware revision greater "
                        "or equal 1.4.", "setInternalClockTrim")
        value = float(frequency_offset_ppm)
        if abs(value) > 50:
            raise ValueError(f"frequency offset must be within +-50 ppm, got {value}")
        self._device_settings["trim"] = value

    def getInternalClockTrim(self) -> float:
        """Return the internal clock's frequency offset in ppm."""
        return self._device_settings["trim"]

    def setLED(self, bitmask: int) -> None:
        """Set the LED state bit mask."""
        self._device_settings["led"] = int(bitmask) & 0xFFFFFFFF

    def disableLEDs(self, disabled: bool) -> None:
        """Switch all LEDs off (or back on)."""
        self._device_settings["leds_disabled"] = bool(disabled)

    def setSoundFrequency(self, freq_hz: int) -> None:
        """Set the buzzer frequency in Hz (0: silent)."""
        if int(freq_hz) < 0:
            raise ValueError(f"freq_hz must be >= 0, got {freq_hz}")
        self._device_settings["sound"] = int(freq_hz)

    def _only_on_x(self, message: str, method: str) -> None:
        """Raise the vendor's RuntimeError (its message first) for a Time Tagger X feature on another model."""
        if self._model.name != "Time Tagger X":
            raise RuntimeError(f"{message} {method} is only available on the Time Tagger X, "
                               f"this is a {self._model.name}.")


def _default_device_settings() -> dict[str, Any]:
    return {
        "test_signal_source": TestSignalSource.Digital, "buffer": 64 * 1024 * 1024, "block": (131072, 20),
        "hysteresis": {}, "high_z": {}, "mux": {}, "normalization": {}, "compensation": True, "trim": 0.0,
        "led": 0, "leds_disabled": False, "sound": 0,
    }
