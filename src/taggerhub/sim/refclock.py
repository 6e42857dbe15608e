"""The software-defined reference clock (``setReferenceClock`` / ``setSoftwareClock``) and its state objects.

The simulated time base is exact, so syntonisation leaves the tags as they
are; what the simulator models is the lock (the input must carry a clock
within a few percent of the given frequency), the ideal clock tags on their
own virtual channel, and the state the vendor reports: period and phase
error, error counter, last ideal clock event.
"""

from __future__ import annotations

import time

import numpy as np

from .engine import Chunk
from .enums import CHANNEL_UNUSED
from .handles import TaggerHandle as TimeTaggerBase  # the vendor's annotation, without importing the tagger
from .signals import PS_PER_S
from .virtual import VirtualChannelBase

LOCK_TOLERANCE = 0.05  # relative deviation of the measured period still accepted ("a few percent")
LOCK_WAIT_S = 5.0


class SoftwareClockState:
    """Configuration and lock state of the software clock."""

    def __init__(self, clock: _ReferenceClock | None, averaging_periods: float = 0.0):
        self._clock = clock
        self._averaging = float(averaging_periods)

    def _get(self, name: str, default):
        return default if self._clock is None else getattr(self._clock, name)

    @property
    def averaging_periods(self) -> float:
        """Averaging periods set with setSoftwareClock."""
        return self._averaging

    @property
    def clock_period(self) -> int:
        """The rounded ideal clock period in ps."""
        return self._get("period", 0)

    @property
    def enabled(self) -> bool:
        """Whether the clock is active."""
        return self._clock is not None

    @property
    def error_counter(self) -> int:
        """Locking errors since the clock was set."""
        return self._get("errors", 0)

    @property
    def ideal_clock_channel(self) -> int:
        """Virtual channel with the ideal clock tags."""
        return self._get("ideal_channel", CHANNEL_UNUSED)

    @property
    def input_channel(self) -> int:
        """The clock input channel."""
        return self._get("input_channel", CHANNEL_UNUSED)

    @property
    def clock_channel(self) -> int:
        """The clock input channel (reference-clock name)."""
        return self.input_channel

    @property
    def is_locked(self) -> bool:
        """Whether the PLL follows the input."""
        return self._get("locked", False)

    @property
    def last_ideal_clock_event(self) -> int:
        """Time of the last ideal clock tag in ps."""
        return self._get("last_ideal", 0)

    @property
    def period_error(self) -> float:
        """Measured minus ideal period in ps."""
        return self._get("period_error", 0.0)

    @property
    def phase_error_estimation(self) -> float:
        """RMS of input minus ideal clock tags in ps."""
        return self._get("phase_rms", 0.0)


class ReferenceClockState(SoftwareClockState):
    """Configuration and lock state of the reference clock."""

    def __init__(self, clock: _ReferenceClock | None, time_constant_s: float = 0.0,
                 synchronization_channel: int = CHANNEL_UNUSED, synchronization_offset: int = 0,
                 event_divider: int = 1):
        period = clock.period if clock is not None else 0
        super().__init__(clock, time_constant_s * PS_PER_S / period if period else 0.0)
        self._sync_channel = int(synchronization_channel)
        self._sync_offset = int(synchronization_offset)
        self._divider = int(event_divider)

    @property
    def event_divider(self) -> int:
        """Event divider of the clock channel."""
        return self._divider

    @property
    def is_synchronized(self) -> bool:
        """Whether the time base follows a 1PPS input (not simulated)."""
        return False

    @property
    def synchronization_channel(self) -> int:
        """The 1PPS channel."""
        return self._sync_channel

    @property
    def synchronization_offset(self) -> int:
        """Manual offset to the system time in ps."""
        return self._sync_offset


class _ReferenceClock(VirtualChannelBase):
    """Follows the clock input and emits ideal clock tags on a virtual channel."""

    def __init__(self, tagger: TimeTaggerBase, input_channel: int, frequency_hz: float, divider: int = 1):
        frequency_hz = float(frequency_hz)
        if not frequency_hz > 0:
            raise ValueError(f"clock frequency must be positive (Hz), got {frequency_hz}")
        self.input_channel = tagger._check_channel(input_channel, physical=True)
        self.period = round(PS_PER_S / frequency_hz)
        self._divider = max(1, int(divider))
        self.locked = False
        self.errors = 0
        self.period_error = 0.0
        self.phase_rms = 0.0
        self.last_ideal = 0
        self._anchor: int | None = None
        super().__init__(tagger, [self.input_channel])
        self.ideal_channel = self._outputs[0]

    def _on_chunk(self, chunk: Chunk) -> None:
        tags = chunk.get(self.input_channel)
        if tags.size >= 2:
            measured = float(np.mean(np.diff(tags))) / self._divider
            ok = abs(measured - self.period) <= LOCK_TOLERANCE * self.period
            if not ok and self.locked:
                self.errors += 1
            self.locked = ok
            self.period_error = measured - self.period
        elif tags.size == 0 and self.locked:
            self.locked = False
            self.errors += 1
        if not self.locked or tags.size == 0:
            return
        anchor = int(tags[0])
        k = np.arange(-((anchor - chunk.begin_ps) // self.period), (chunk.end_ps - anchor) // self.period + 1)
        ideal = anchor + k * self.period
        ideal = ideal[(ideal >= chunk.begin_ps) & (ideal < chunk.end_ps)]
        nearest = anchor + np.rint((tags - anchor) / self.period).astype(np.int64) * self.period
        self.phase_rms = float(np.sqrt(np.mean((tags - nearest).astype(float) ** 2)))
        if ideal.size:
            self.last_ideal = int(ideal[-1])
        self._emit(chunk, self.ideal_channel, ideal)


def start_clock(tagger: TimeTaggerBase, input_channel: int, frequency_hz: float, wait_until_locked: bool,
                divider: int = 1) -> _ReferenceClock:
    """Create the clock and, if asked, wait (bounded) until it locks; raise RuntimeError if it does not."""
    clock = _ReferenceClock(tagger, input_channel, frequency_hz, divider)
    if wait_until_locked:
        engine = tagger._engine
        deadline = time.monotonic() + LOCK_WAIT_S
        virtual_steps = 0
        while not clock.locked and time.monotonic() < deadline:
            if engine.clock.mode == "virtual":
                if virtual_steps == 50:  # half a second of simulated time without a lock
                    break
                engine.step(engine.processed_ps + 10_000_000_000)  # time stands still otherwise
                virtual_steps += 1
            else:
                tagger.sync(200)
                time.sleep(0.01)
        if not clock.locked:
            clock._release()
            raise RuntimeError(f"reference clock on channel {input_channel} did not lock to {frequency_hz} Hz: "
                               "no clock signal within a few percent of that frequency")
    return clock
