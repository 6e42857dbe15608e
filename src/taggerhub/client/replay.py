"""What the library proxy answers in this process: ``TT.FileReader``, ``TT.createTimeTaggerVirtual`` and replays.

A recording is replayed where the script runs, as with the vendor's library: ``TT.FileReader(names)``
and ``TT.createTimeTaggerVirtual()`` are the simulator's own (:mod:`taggerhub.sim.recording`,
:mod:`taggerhub.sim.replay`), and a measurement created with ``TT.Countrate(virtual, ...)``,
``TT.Correlation(virtual, ...)`` and so on runs here on the replayed tags, while the same names on
a tagger of the server stay remote calls. A file name that is not a local file is taken as the
name of a recording in the caller's folder on the server (``hub_recordings()``): it is downloaded
first into the recordings cache (:func:`taggerhub.client.env.recordings_cache`) and replayed from
there (:mod:`.recordings`). Names outside the caller's folder are refused by the server.

``TT.CustomMeasurement`` (:mod:`.custom`) is answered here too: its ``process()`` runs in this process, on
the server's tag stream, or, created on a virtual tagger, on the replay (through a :class:`_Replica`).
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import sim
from ..sim.iterators import IteratorBase
from ..sim.recording import FileNames
from ..sim.recording import FileReader as SimFileReader
from ..sim.replay import TimeTaggerVirtual
from ..sim.tagger import TimeTaggerBase
from . import custom, taggertypes
from .recordings import local_copy

ABSTRACT = {"IteratorBase", "CustomMeasurement", "CustomMeasurementBase", "FlimBase", "FlimAbstract"}
# Names that take a tagger first: created here when that tagger is a local one (a replay), else on the server.
TAKES_TAGGER = frozenset(
    [name for name in sim.__all__ if isinstance(getattr(sim, name), type)
     and issubclass(getattr(sim, name), IteratorBase) and name not in ABSTRACT]
    + ["SynchronizedMeasurements", "freeTimeTagger"])
LOCAL_NAMES = TAKES_TAGGER | taggertypes.NAMES | {"CustomMeasurement", "FileReader", "createTimeTaggerVirtual"}


def local_attribute(library: Any, name: str, remote_method: Callable[[Any, str], Any]) -> Any:
    """The library attribute ``name`` when this process answers it (else None: a plain remote call)."""
    if name not in LOCAL_NAMES:
        return None
    if name in taggertypes.NAMES:  # for annotations and isinstance(): TT.TimeTaggerBase and the like
        return taggertypes.TYPES[name]
    if name == "CustomMeasurement":  # process() runs here: on tags streamed from the server, or on a replay
        return custom_measurement_class(library)
    fetch = functools.partial(_local_path, library)
    if name == "FileReader":
        return type("FileReader", (_FileReader,), {"_fetch": staticmethod(fetch), "__doc__": _FileReader.__doc__})
    if name == "createTimeTaggerVirtual":
        return functools.partial(_create_virtual, fetch)
    remote = remote_method(library, name) if name in library._pyroMethods else None
    return _LocalOrRemote(name, remote)


def _local_path(library: Any, name: str | Path) -> str:
    return str(local_copy(library, str(name)))


class _LocalOrRemote:
    """``TT.<Measurement>(tagger, ...)``: the simulator's class on a local tagger, the server's on a remote one."""

    __slots__ = ("local", "name", "remote")

    def __init__(self, name: str, remote: Any | None):
        self.name = name
        self.local = getattr(sim, name)
        self.remote = remote

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tagger = args[0] if args else kwargs.get("tagger")
        if isinstance(tagger, TimeTaggerBase):
            return self.local(*args, **kwargs)
        if self.remote is None:
            raise AttributeError(f"the server has no {self.name}; it runs here only on a local tagger "
                                 "(TT.createTimeTaggerVirtual())")
        return self.remote(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.name}: local on a replay, else {self.remote!r}>"


class _FileReader(SimFileReader):
    """Reads a recording here; a name that is no local file is a recording of yours on the server, downloaded."""

    _fetch: Callable[[str | Path], str]

    def __init__(self, filenames: FileNames | None = None, filename: str | Path | None = None):
        if (filenames is None) == (filename is None):
            super().__init__(filenames, filename)  # the simulator's error names what is wrong
            return
        given = filename if filename is not None else filenames
        names = [given] if isinstance(given, str | Path) else list(given)
        super().__init__([self._fetch(name) for name in names])


class _ReplayTagger(TimeTaggerVirtual):
    """The simulator's virtual tagger, taking recordings of your server folder by name too."""

    def __init__(self, fetch: Callable[[str | Path], str], filename: str = "", begin: int = 0, duration: int = -1):
        self._fetch = fetch
        super().__init__(fetch(filename) if filename else "", begin, duration)

    def _queue(self, filename: str, begin: int, duration: int, clear: bool) -> int:
        return super()._queue(self._fetch(filename), begin, duration, clear)


def _create_virtual(fetch: Callable[[str | Path], str], filename: str = "", begin: int = 0,
                    duration: int = -1) -> TimeTaggerVirtual:
    """Create a virtual tagger here, replaying ``filename`` (a local file or a recording of yours on the server)."""
    return _ReplayTagger(fetch, str(filename) if filename else "", begin, duration)


class _Replica(sim.CustomMeasurement):
    """The simulator's CustomMeasurement that hands a replay's tags to a ``TT.CustomMeasurement`` made on it.

    It shares the owner's lock, so ``with self.mutex`` in the owner's ``getData()`` and the engine's calls of
    ``process()`` exclude each other as with the vendor's library; it holds the owner weakly, and the owner
    holds it, so dropping the owner frees both.
    """

    def __init__(self, owner: Any, tagger: TimeTaggerBase):
        super().__init__(tagger)
        self._lock = owner._lock
        self._finished = threading.Condition(self._lock)
        self._owner = weakref.ref(owner)

    def process(self, incoming_tags: Any, begin_time: int, end_time: int) -> None:
        owner = self._owner()
        if owner is not None:
            owner.process(incoming_tags, begin_time, end_time)

    def clear_impl(self) -> None:
        owner = self._owner()
        if owner is not None:
            owner.clear_impl()

    def on_start(self) -> None:
        owner = self._owner()
        if owner is not None:
            owner.on_start()

    def on_stop(self) -> None:
        owner = self._owner()
        if owner is not None:
            owner.on_stop()


REPLICATED = ("register_channel", "unregister_channel", "finalize_init", "start", "startFor", "stop", "clear",
              "isRunning", "getCaptureDuration", "waitUntilFinished")


def _local_or_streamed(name: str, streamed: Callable[..., Any]) -> Callable[..., Any]:
    """Method ``name`` of the replica when the measurement was made on a local tagger, else the streamed one."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        replica = self.__dict__.get("_replica")
        if replica is not None:
            return getattr(replica, name)(*args, **kwargs)
        return streamed(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = streamed.__doc__
    return method


def custom_measurement_class(library: Any) -> type:
    """``TT.CustomMeasurement``: on a server's tagger as :mod:`.custom` streams it; on a virtual one, on its replay."""
    streamed = custom.custom_measurement_class(library)

    def init(self: Any, tagger: Any) -> None:
        streamed.__init__(self, tagger)
        self._replica = _Replica(self, tagger) if isinstance(tagger, TimeTaggerBase) else None

    namespace: dict[str, Any] = {name: _local_or_streamed(name, getattr(streamed, name)) for name in REPLICATED}
    namespace.update(__init__=init, __module__=streamed.__module__, __doc__=streamed.__doc__)
    return type("CustomMeasurement", (streamed,), namespace)
