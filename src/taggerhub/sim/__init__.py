"""A simulated Time Tagger that looks like the vendor's Python module to reflection.

``import taggerhub.sim as TimeTagger`` gives the same public names as
``Swabian.TimeTagger``: ``createTimeTagger``, ``freeTimeTagger``,
``scanTimeTagger``, the enums, ``TimeTaggerBase``/``TimeTagger``,
``IteratorBase`` and the measurement classes. Which devices exist and what
signals they see is set with :func:`configure` (a lab TOML file or device
specs); without it, the built-in default lab is used.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

from . import experimental as Experimental  # noqa: N812 - the vendor's name
from . import lab as _lab_files  # load_lab etc. must not become remotely callable module functions
from . import synchronized as _synchronized  # SynchronizedTagger stays out of the reflected namespace
from .custom import CustomMeasurement, CustomMeasurementBase
from .enums import (
    CHANNEL_UNUSED,
    FLAT_CONSTANTS,
    HIGH,
    LOW,
    TT_CHANNEL_FALLING_EDGES,
    TT_CHANNEL_NUMBER_SCHEME_AUTO,
    TT_CHANNEL_NUMBER_SCHEME_ONE,
    TT_CHANNEL_NUMBER_SCHEME_ZERO,
    TT_CHANNEL_RISING_AND_FALLING_EDGES,
    TT_CHANNEL_RISING_EDGES,
    UNKNOWN,
    AccessMode,
    ChannelEdge,
    CoincidenceTimestamp,
    FrontendType,
    GatedChannelInitial,
    Resolution,
    TagType,
    TestSignalSource,
)
from .flim import Flim, FlimAbstract, FlimBase, FlimFrameInfo
from .frequency import FrequencyCounter, FrequencyCounterData
from .histograms import CountBetweenMarkers, GatedCounter, Histogram, Histogram2D, StartStop, TimeDifferences
from .iterators import IteratorBase
from .logbins import (
    ChannelGate,
    HistogramCustomBins,
    HistogramCustomBinsData,
    HistogramLogBins,
    HistogramLogBinsData,
)
from .measurements import Correlation, CorrelationPairs, CorrelationPairsData, Counter, CounterData, Countrate
from .phasenoise import PhaseNoise, PhaseNoiseData
from .recording import FileReader, FileWriter
from .refclock import ReferenceClockState, SoftwareClockState
from .replay import TimeTaggerVirtual, createTimeTaggerVirtual
from .sampling import Sampler, TriggerOnCountrate
from .scope import Dump, Event, HistogramND, Scope
from .stability import (
    FrequencyStability,
    FrequencyStabilityData,
    PulsePerSecondData,
    PulsePerSecondMonitor,
    PulsePerSecondMonitorData,
)
from .stream import TimeTagStream, TimeTagStreamBuffer
from .synchronized import SynchronizedMeasurements
from .tag import Tag
from .tagger import TimeTagger, TimeTaggerBase
from .timediffnd import TimeDifferencesND
from .virtual import (
    Coincidence,
    Coincidences,
    Combinations,
    Combiner,
    ConditionalFilterChannel,
    ConstantFractionDiscriminator,
    DelayedChannel,
    DelayedChannels,
    EventGenerator,
    FrequencyMultiplier,
    GatedChannel,
    GatedChannels,
    SyntheticSingleTag,
)

globals().update(FLAT_CONSTANTS)

# `from taggerhub.sim.Experimental import SimDetector` works as with the vendor module.
sys.modules[f"{__name__}.Experimental"] = Experimental

if TYPE_CHECKING:
    from pathlib import Path

    from .lab import DeviceSpec

SIMULATOR_VERSION = "2.22.6"  # the vendor library version whose API this simulator mirrors

__all__ = [
    "Dump",
    "Event",
    "HistogramND",
    "Scope",
    "PulsePerSecondData",
    "PulsePerSecondMonitor",
    "PulsePerSecondMonitorData",
    "CHANNEL_UNUSED",
    "HIGH",
    "LOW",
    "TT_CHANNEL_FALLING_EDGES",
    "TT_CHANNEL_NUMBER_SCHEME_AUTO",
    "TT_CHANNEL_NUMBER_SCHEME_ONE",
    "TT_CHANNEL_NUMBER_SCHEME_ZERO",
    "UNKNOWN",
    "TT_CHANNEL_RISING_AND_FALLING_EDGES",
    "TT_CHANNEL_RISING_EDGES",
    "AccessMode",
    "ChannelEdge",
    "ChannelGate",
    "Coincidence",
    "CoincidenceTimestamp",
    "Coincidences",
    "Combinations",
    "Combiner",
    "ConditionalFilterChannel",
    "ConstantFractionDiscriminator",
    "Correlation",
    "CorrelationPairs",
    "CorrelationPairsData",
    "CountBetweenMarkers",
    "Counter",
    "CustomMeasurement",
    "CustomMeasurementBase",
    "CounterData",
    "Countrate",
    "DelayedChannel",
    "DelayedChannels",
    "EventGenerator",
    "Experimental",
    "FileReader",
    "FileWriter",
    "Flim",
    "FlimAbstract",
    "FlimBase",
    "FlimFrameInfo",
    "FrontendType",
    "FrequencyCounter",
    "FrequencyCounterData",
    "FrequencyMultiplier",
    "FrequencyStability",
    "FrequencyStabilityData",
    "GatedChannel",
    "GatedChannels",
    "GatedCounter",
    "GatedChannelInitial",
    "Histogram",
    "Histogram2D",
    "HistogramCustomBins",
    "HistogramCustomBinsData",
    "HistogramLogBins",
    "HistogramLogBinsData",
    "IteratorBase",
    "PhaseNoise",
    "PhaseNoiseData",
    "ReferenceClockState",
    "Resolution",
    "Sampler",
    "SoftwareClockState",
    "StartStop",
    "SynchronizedMeasurements",
    "SyntheticSingleTag",
    "Tag",
    "TagType",
    "TestSignalSource",
    "TimeDifferences",
    "TimeDifferencesND",
    "TimeTagStream",
    "TimeTagStreamBuffer",
    "TimeTagger",
    "TimeTaggerBase",
    "TimeTaggerVirtual",
    "TriggerOnCountrate",
    "configure",
    "createTimeTagger",
    "createTimeTaggerVirtual",
    "freeAllTimeTagger",
    "freeTimeTagger",
    "getVersion",
    "getTimeTaggerChannelNumberScheme",
    "getTimeTaggerModel",
    "scanTimeTagger",
    "setTimeTaggerChannelNumberScheme",
    *FLAT_CONSTANTS,
]


class _Lab:
    """The process-wide simulated lab: device specs and which of them are open."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.devices: list[DeviceSpec] | None = None
        self.clock = "realtime"
        self.seed: int | None = None
        self.open: dict[str, TimeTagger] = {}
        self.channel_scheme = TT_CHANNEL_NUMBER_SCHEME_AUTO

    def specs(self) -> list[DeviceSpec]:
        if self.devices is None:
            self.devices = _lab_files.load_lab(None)
        return self.devices


_lab = _Lab()


def configure(
    lab_file: str | Path | None = None,
    devices: list[DeviceSpec] | None = None,
    clock: str = "realtime",
    seed: int | None = None,
) -> None:
    """Choose the simulated devices (from a lab file or specs), the clock mode and the random seed."""
    if clock not in ("realtime", "virtual"):
        raise ValueError(f"clock must be 'realtime' or 'virtual', got {clock!r}")
    specs = devices if devices is not None else _lab_files.load_lab(lab_file)
    with _lab.lock:
        _lab.devices = specs
        _lab.clock = clock
        _lab.seed = seed


def getVersion() -> str:
    """Return the version of the (simulated) Time Tagger library."""
    return SIMULATOR_VERSION


def scanTimeTagger(include_model_name: bool = False) -> list[str]:
    """Return the serial numbers of the simulated devices not in use ("serial,model" with include_model_name)."""
    with _lab.lock:
        free = [d for d in _lab.specs() if d.serial not in _lab.open]
    return [f"{d.serial},{d.model.name}" if include_model_name else d.serial for d in free]


def getTimeTaggerModel(serial: str) -> str:
    """Return the model name of the simulated device with this serial."""
    with _lab.lock:
        for d in _lab.specs():
            if d.serial == serial:
                return d.model.name
    raise RuntimeError(f"No Time Tagger with serial {serial!r} attached")


def setTimeTaggerChannelNumberScheme(scheme: int) -> None:
    """Choose the channel numbering; the simulator numbers from 1 (scheme ONE, which AUTO selects)."""
    scheme = int(scheme)
    if scheme not in (TT_CHANNEL_NUMBER_SCHEME_AUTO, TT_CHANNEL_NUMBER_SCHEME_ONE):
        raise ValueError(f"channel number scheme {scheme} is not supported by the simulator: only AUTO (0) and "
                         "ONE (2), channels numbered from 1, as on current models")
    _lab.channel_scheme = scheme


def getTimeTaggerChannelNumberScheme() -> int:
    """Return the channel numbering scheme set."""
    return _lab.channel_scheme


def createTimeTagger(serial: str = "", resolution: Resolution = Resolution.Standard) -> TimeTagger:
    """Open a simulated Time Tagger: the given serial, or the first one not in use."""
    with _lab.lock:
        for gone in [s for s, t in _lab.open.items() if t._freed]:  # freed by `with ... as tagger:`
            del _lab.open[gone]
        specs = _lab.specs()
        if serial:
            matches = [d for d in specs if d.serial == serial]
            if not matches:
                raise RuntimeError(f"No Time Tagger with serial {serial!r} attached "
                                   f"(simulated devices: {', '.join(d.serial for d in specs)})")
            spec = matches[0]
        else:
            free = [d for d in specs if d.serial not in _lab.open]
            if not free:
                raise RuntimeError("No Time Tagger attached or already in use.")
            spec = free[0]
        if spec.serial in _lab.open:
            raise RuntimeError(f"Time Tagger {spec.serial} is already in use.")
        tagger = TimeTagger(spec.serial, spec.model, spec.sources, clock=_lab.clock, seed=_lab.seed,
                            resolution=resolution, channel_settings=spec.channels)
        _lab.open[spec.serial] = tagger
        return tagger


def freeTimeTagger(tagger: TimeTaggerBase) -> bool:
    """Close a tagger and release its measurements; return False if it was not open."""
    if not isinstance(tagger, TimeTaggerBase):
        raise TypeError(f"freeTimeTagger expects a TimeTagger object, got {type(tagger).__name__}")
    if isinstance(tagger, _synchronized.SynchronizedTagger):
        raise ValueError("freeTimeTagger needs the tagger from createTimeTagger(), not the proxy of "
                         "SynchronizedMeasurements.getTagger()")
    with _lab.lock:
        serial = getattr(tagger, "_serial", None)
        was_open = _lab.open.get(serial) is tagger
        if was_open:
            del _lab.open[serial]
    tagger._free()
    return was_open


def freeAllTimeTagger() -> None:
    """Close every tagger this process opened with createTimeTagger (the vendor demos' last line).

    As in the vendor library (TT::freeAllTimeTagger, void): no arguments, returns None, and the freed
    objects refuse further use; their measurements stop.
    """
    with _lab.lock:
        taggers = list(_lab.open.values())
        _lab.open.clear()
    for tagger in taggers:
        tagger._free()
