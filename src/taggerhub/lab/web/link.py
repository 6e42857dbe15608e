"""One open page's own connection to the server, under the browser user's token or certificate.

Each :class:`PageLink` names itself to the server with a client id of its own, so
every open page is one server session: the user's role, the control lease and the
audit log apply to it exactly as to a script. Closing the link ends the session,
and the server frees what it made (its ``Countrate``, its live histogram). The live
histogram lives in a second session of its own, so that picking a new one frees
the old one at once instead of at page close.

A session costs one connection, not one per object: Pyro5 names the target object in
every message, so the tagger and the measurements are called over the library proxy's
connection (:class:`Remote`). A page counts 1 connection against the user's
``auth.max_connections_per_user``, 2 with a live histogram.

Every method blocks on RPCs; the web app calls them on worker threads.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from Pyro5 import protocol

from ... import client
from ...wire import codecs

OBJECT_ID = "TimeTaggerRPC"
PS_PER_S = 1e12
MEAN_WINDOW_S = 2.0  # the rate table shows the mean over this long: Poisson noise of 50 kHz under 0.5 %
MAX_BINS = 100_000
MAX_BINWIDTH_PS = 10**12


@dataclass(frozen=True)
class Target:
    """Where the server is and how to reach it (the web process's own settings)."""

    host: str
    port: int
    ssl_context: ssl.SSLContext | None = None
    timeout_s: float = 3.0

    def proxy(self, token: str, client_id: str) -> Any:
        """A library proxy that is its own server session (``client_id``), bound now so a bad token fails here."""
        codecs.install()
        proxy = client.Proxy(f"PYRO:{OBJECT_ID}@{self.host}:{self.port}", token=token or None,
                             ssl_context=self.ssl_context)
        proxy._pyroHandshake = {"client": client_id, "token": token or ""}
        proxy._pyroTimeout = self.timeout_s
        try:
            proxy._pyroBind()
        except BaseException:
            proxy._pyroRelease()
            raise
        return proxy


def whoami(target: Target, token: str) -> dict[str, Any]:
    """Check a login: connect with ``token`` once and return the server's ``you`` (user, role); then hang up."""
    proxy = target.proxy(token, uuid.uuid4().hex)
    try:
        you = proxy.hub_status().get("you")
    finally:
        proxy._pyroRelease()
    if not you:
        raise RuntimeError("the server does not say who you are (a taggerhub server older than the web page?)")
    return dict(you)


def _release(*proxies: Any) -> None:
    for proxy in proxies:
        if proxy is not None:
            with contextlib.suppress(Exception):
                proxy._pyroRelease()


class Remote:
    """A served object called over another proxy's connection (its ``carrier``), so a session needs one connection.

    The carrier is a taggerhub proxy: its lock serialises calls from any thread. ``proxy`` is the
    object's own proxy with its connection closed, kept to pass the object as an argument (by URI).
    """

    def __init__(self, carrier: Any, proxy: Any):
        self.carrier, self.proxy = carrier, proxy
        self.object_id = proxy._pyroUri.object
        _release(proxy)  # the session lives on in the carrier's connection

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.carrier._pyroInvoke(name, args, kwargs, objectId=self.object_id)

        return call

    def _pyroClaimOwnership(self) -> None:
        """Pyro5's BatchProxy asks; the carrier may be used from any thread."""

    def _pyroInvokeBatch(self, calls: Any, oneway: bool = False) -> Any:
        """Pyro5's BatchProxy: the whole batch in one message over the carrier's connection."""
        flags = protocol.FLAGS_BATCH | (protocol.FLAGS_ONEWAY if oneway else 0)
        return self.carrier._pyroInvoke("<batch>", calls, None, flags, objectId=self.object_id)


SETTINGS = {
    # name on the page: (getter, setter, converter)
    "trigger_level": ("getTriggerLevel", "setTriggerLevel", float),
    "delay": ("getInputDelay", "setInputDelay", int),
    "deadtime": ("getDeadtime", "setDeadtime", int),
    "test_signal": ("getTestSignal", "setTestSignal", bool),
}


def _number(value: Any, what: str, kind: type) -> Any:
    """``value`` as ``kind`` (int, float or bool), or a ValueError that names ``what``."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{what} must be true or false, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    if kind is int:
        if number != int(number):
            raise ValueError(f"{what} must be a whole number of picoseconds, got {value!r}")
        return int(number)
    return number


class PageLink:
    """The page's session: the shared tagger, a ``Countrate`` on every input, settings, lease and status."""

    def __init__(self, target: Target, token: str):
        self.target = target
        self._token = token
        self.client_id = uuid.uuid4().hex
        self.library: Any = None
        self.tagger: Any = None
        self.countrate: Any = None
        self.channels: list[int] = []
        self.serial = self.model = ""
        self.you: dict[str, Any] = {}
        self._last: tuple[int, list[int]] | None = None  # capture duration (ps) and counts at the last tick
        self._window: deque[tuple[float, list[float]]] = deque()  # (seconds, counts) per tick
        self._hist: _LiveHistogram | None = None
        self.closed = False  # after close(), no call may reconnect a proxy (Pyro5 would, by itself)

    def open(self) -> PageLink:
        try:
            self.library = self.target.proxy(self._token, self.client_id)
            self.you = dict(self.library.hub_status()["you"])
            self.tagger = Remote(self.library, self.library.createTimeTagger())
            self.serial, self.model = str(self.tagger.getSerial()), str(self.tagger.getModel())
            self.channels = [int(c) for c in self.tagger.getChannelList() if int(c) > 0]
            self.countrate = Remote(self.library, self.library.Countrate(self.tagger.proxy, self.channels))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Hang up: the server ends this page's sessions and frees their measurements (and lease)."""
        self.closed = True
        self.stop_histogram()
        _release(self.library)  # the one connection: tagger and Countrate were called over it

    # -- count rates ------------------------------------------------------------------
    def rates(self) -> dict[str, Any]:
        """Rates since the last tick (counts over capture time, both read now) and their mean over 2 s.

        Only reads: a ``clear()`` per tick would write ten audit lines a second per page.
        """
        duration, counts = self._counts()
        now = time.time()
        last, self._last = self._last, (duration, counts)
        if last is None or duration <= last[0]:
            return {"t": now, "rates": None, "mean": None}
        seconds = (duration - last[0]) / PS_PER_S
        delta = [float(c - p) for c, p in zip(counts, last[1], strict=True)]
        self._window.append((seconds, delta))
        while sum(s for s, _ in self._window) - self._window[0][0] >= MEAN_WINDOW_S:
            self._window.popleft()
        span = sum(s for s, _ in self._window)
        mean = [sum(d[i] for _, d in self._window) / span for i in range(len(delta))]
        return {"t": now, "rates": [d / seconds for d in delta], "mean": mean, "span_s": span}

    def _counts(self) -> tuple[int, list[int]]:
        """Counts and the capture time they cover, read in two calls: again if a chunk of tags came in between.

        Unmatched, a tick's rate would be off by a whole chunk (up to 20 ms of tags in 100 ms).
        """
        if self.closed:
            raise ConnectionError("the page was closed")
        duration = int(self.countrate.getCaptureDuration())
        for _ in range(3):
            counts = [int(c) for c in self.countrate.getCountsTotal()]
            after = int(self.countrate.getCaptureDuration())
            if after == duration:
                break
            duration = after
        return duration, counts

    # -- device settings ----------------------------------------------------------------
    def settings(self) -> dict[str, dict[str, Any]]:
        """Every input's trigger level (V), delay and dead time (ps) and test signal, in one round trip."""
        from Pyro5.api import BatchProxy

        batch = BatchProxy(self.tagger)
        for channel in self.channels:
            for getter, _, _ in SETTINGS.values():
                getattr(batch, getter)(channel)
        values = list(batch())
        table: dict[str, dict[str, Any]] = {}
        for channel in self.channels:
            table[str(channel)] = {name: kind(values.pop(0)) for name, (_, _, kind) in SETTINGS.items()}
        return table

    def change(self, channel: Any, name: Any, value: Any) -> Any:
        """Change one setting of one input; the server decides whether this user may (role, lease)."""
        if name not in SETTINGS:
            raise ValueError(f"unknown setting {name!r}; one of {', '.join(SETTINGS)}")
        number = _number(channel, "channel", int)
        if number not in self.channels:
            raise ValueError(f"channel {number} is not an input of {self.model} (1..{max(self.channels)})")
        getter, setter, kind = SETTINGS[name]
        getattr(self.tagger, setter)(number, _number(value, name.replace("_", " "), kind))
        return kind(getattr(self.tagger, getter)(number))

    # -- lease, sessions, health ----------------------------------------------------------
    def lease(self, action: Any, seconds: Any = 60) -> Any:
        if action == "acquire":
            return self.library.acquireControl(_number(seconds, "lease seconds", float))
        if action == "release":
            return self.library.releaseControl()
        raise ValueError(f"lease action must be 'acquire' or 'release', got {action!r}")

    def status(self) -> dict[str, Any]:
        """The server's status (lease holder included), the session list if this user may see it, the round trip."""
        if self.closed:
            raise ConnectionError("the page was closed")
        started = time.perf_counter()
        status = self.library.hub_status()
        rtt_ms = (time.perf_counter() - started) * 1e3
        self.you = dict(status.get("you") or self.you)
        sessions = self.library.hub_sessions() if self.you.get("role") == "admin" else None
        overflows = int(self.tagger.getOverflows())
        return {"status": status, "sessions": sessions, "rtt_ms": rtt_ms, "overflows": overflows}

    # -- the live histogram ---------------------------------------------------------------
    def start_histogram(self, kind: Any, click: Any, start: Any, binwidth_ps: Any, bins: Any) -> dict[str, Any]:
        """Replace the page's live ``Correlation``/``Histogram`` with a new one; return what it is."""
        if kind not in ("Correlation", "Histogram"):
            raise ValueError(f"measurement must be 'Correlation' or 'Histogram', got {kind!r}")
        chans = []
        for what, value in (("first channel", click), ("second channel", start)):
            number = _number(value, what, int)
            if abs(number) not in self.channels:
                raise ValueError(f"{what} {number} is not an input of {self.model} "
                                 f"(1..{max(self.channels)}, negative for falling edges)")
            chans.append(number)
        width = _number(binwidth_ps, "bin width", int)
        if not 1 <= width <= MAX_BINWIDTH_PS:
            raise ValueError(f"bin width must be 1..{MAX_BINWIDTH_PS} ps, got {binwidth_ps!r}")
        n_bins = _number(bins, "bins", int)
        if not 1 <= n_bins <= MAX_BINS:
            raise ValueError(f"bins must be 1..{MAX_BINS}, got {bins!r}")
        self.stop_histogram()
        self._hist = _LiveHistogram(self.target, self._token, str(kind), chans[0], chans[1], width, n_bins)
        return self._hist.describe()

    def stop_histogram(self) -> None:
        hist, self._hist = self._hist, None
        if hist is not None:
            hist.close()

    def histogram(self) -> dict[str, Any] | None:
        return None if self._hist is None else self._hist.read()


class _LiveHistogram:
    """A Correlation or Histogram in a session of its own: closing it frees it on the server at once."""

    def __init__(self, target: Target, token: str, kind: str, click: int, start: int, binwidth: int, bins: int):
        self.kind, self.click, self.start, self.binwidth, self.bins = kind, click, start, binwidth, bins
        self.library = self.tagger = self.measurement = None
        try:
            self.library = target.proxy(token, uuid.uuid4().hex)
            self.tagger = Remote(self.library, self.library.createTimeTagger())
            make = getattr(self.library, kind)
            self.measurement = Remote(self.library, make(self.tagger.proxy, click, start, binwidth, bins))
            self.index = [float(x) for x in self.measurement.getIndex()]
        except BaseException:
            self.close()
            raise

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "click": self.click, "start": self.start, "binwidth_ps": self.binwidth,
                "bins": self.bins}

    def read(self) -> dict[str, Any]:
        data = self.measurement.getData()  # type: ignore[union-attr]
        seconds = int(self.measurement.getCaptureDuration()) / PS_PER_S  # type: ignore[union-attr]
        return {**self.describe(), "index_ps": self.index, "counts": [int(x) for x in data], "seconds": seconds}

    def close(self) -> None:
        _release(self.library)  # its one connection: the session ends and the server frees the measurement
