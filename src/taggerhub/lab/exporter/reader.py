"""The exporter's reader: connects to a taggerhub server and turns one scrape into one :class:`Reading`.

The reader connects to the server like any other client, opens (shares) the
taggers the server has open -- ``exporter.serial`` when set, else every open
one, and the first one when none is -- and keeps a server-side ``Countrate``
of its own on each, on the watched channels. Every read asks the server for
all its figures in one call (``hub_metrics``) and reads those ``Countrate``
objects beside it. Nothing is cached between reads except the last count rates
when reads come faster than ``rate_window_s``.

When the server or the device is gone, a read still returns, with
``metrics`` None or the tagger not ``ok``; the next read reconnects and
recreates the ``Countrate``, so the exporter never needs a restart. Every RPC
has a short timeout, so a read never hangs on a dead server.

Everything that talks to the network is here; the collector only formats a
:class:`Reading`, which is plain data (``as_dict``/``from_dict``) so that tests
and fixtures can stand in for a server.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from Pyro5 import config as pyro_config
from Pyro5.api import BatchProxy

from ... import client
from ...access.tls import client_context
from ...config import ExporterSettings
from ...wire import addresses, codecs

log = logging.getLogger("taggerhub.exporter")
PS_PER_S = 1e12
OBJECT_ID = "TimeTaggerRPC"


def parse_address(text: str, what: str, default_host: str = "localhost") -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` too) and say which option is wrong if it cannot be parsed."""
    return addresses.parse_host_port(text, what, default_host=default_host)


@dataclass
class _Watch:
    """One watched tagger: its shared proxy, our Countrate on it and the rate window being pooled."""

    serial: str
    tagger: Any = None
    countrate: Any = None
    channels: list[int] = field(default_factory=list)
    last_rates: dict[int, float] = field(default_factory=dict)
    pending_ps: int = 0  # count-rate windows too short to publish yet
    pending_counts: dict[int, float] = field(default_factory=dict)

    def close(self) -> None:
        for proxy in (self.countrate, self.tagger):
            if proxy is not None:
                with contextlib.suppress(Exception):
                    proxy._pyroRelease()


@dataclass
class _Link:
    """One live connection to the server: the library and the watched taggers by serial."""

    library: Any
    watches: dict[str, _Watch] = field(default_factory=dict)

    def close(self) -> None:
        # Closing every connection ends our session, so the server frees our Countrates.
        for watch in self.watches.values():
            watch.close()
        self.watches.clear()
        with contextlib.suppress(Exception):
            self.library._pyroRelease()


@dataclass
class TaggerReading:
    """What one scrape learned about one tagger."""

    serial: str
    ok: bool = False
    rates: dict[int, float] = field(default_factory=dict)
    overflows: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"serial": self.serial, "ok": self.ok, "rates": {str(c): r for c, r in self.rates.items()},
                "overflows": self.overflows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaggerReading:
        """From :meth:`as_dict` (JSON keys are strings: channels become ints again)."""
        return cls(serial=str(data["serial"]), ok=bool(data.get("ok", False)),
                   rates={int(c): float(r) for c, r in data.get("rates", {}).items()},
                   overflows=data.get("overflows"))


@dataclass
class Reading:
    """What one scrape learned; ``metrics`` is None when the server did not answer.

    ``metrics`` is the server's ``hub_metrics()`` answer as it came over the
    wire; ``connects`` counts the connections the reader has made so far.
    """

    metrics: dict[str, Any] | None = None
    taggers: list[TaggerReading] = field(default_factory=list)
    duration_s: float = 0.0
    connects: int = 0

    @property
    def tagger_ok(self) -> bool:
        """Every watched tagger was read (and there was one)."""
        return bool(self.taggers) and all(t.ok for t in self.taggers)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: how a reading is recorded as a test fixture."""
        return {"metrics": self.metrics, "taggers": [t.as_dict() for t in self.taggers],
                "duration_s": self.duration_s, "connects": self.connects}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reading:
        return cls(metrics=data.get("metrics"), taggers=[TaggerReading.from_dict(t) for t in data.get("taggers", [])],
                   duration_s=float(data.get("duration_s", 0.0)), connects=int(data.get("connects", 0)))


class ReadingSource(Protocol):
    """Where a collector gets its readings: a :class:`ServerReader`, or recorded ones in tests."""

    def read(self) -> Reading: ...

    def close(self) -> None: ...


def open_serials(metrics: dict[str, Any]) -> list[str]:
    """Serials of the taggers the server has open, from ``hub_metrics()``."""
    return [str(d["serial"]) for d in metrics.get("status", {}).get("devices", [])]


class ServerReader:
    """Reads the server's figures and every watched tagger's count rates, one :class:`Reading` per call.

    Watched taggers: the one in ``settings.serial``; without one, every tagger the
    server has open (and, when none is, the one ``createTimeTagger()`` opens), so a
    PC with several taggers reports each under its own ``serial`` label.
    """

    def __init__(self, settings: ExporterSettings):
        self.settings = settings
        self.host, self.port = parse_address(settings.server, "exporter.server")
        # Built once, so that a bad certificate path stops the exporter at start, not at every scrape.
        self._ssl = client_context(settings.tls_ca, settings.tls_cert, settings.tls_key) if settings.tls_ca else None
        self._lock = threading.Lock()  # one scrape at a time: the Countrate windows are shared
        self._link: _Link | None = None
        # Serials reported last time, so they read 0 (not vanish) while the server is away.
        self._last_serials: list[str] = [settings.serial] if settings.serial else []
        self._failing: set[str] = set()  # "server" or "tagger <serial>", to log changes only
        self.connects = 0
        # Count rates of all taggers are read side by side with the server's figures.
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="taggerhub-exporter")

    # -- connection -----------------------------------------------------------------
    def _make_proxy(self, uri: str, token: str | None) -> Any:
        codecs.install()
        pyro_config.SOCK_NODELAY = True  # as client.createProxy: small messages, no Nagle delay
        proxy = client.Proxy(uri, token=token, ssl_context=self._ssl)
        proxy._pyroTimeout = self.settings.timeout_s  # connect and every call
        return proxy

    def _connect(self) -> _Link:
        token = self.settings.token or None
        library = self._make_proxy(f"PYRO:{OBJECT_ID}@{self.host}:{self.port}", token)
        link = _Link(library=library)
        try:
            library._pyroBind()
        except BaseException:
            link.close()
            raise
        self.connects += 1
        log.info("connected", extra={"server": f"{self.host}:{self.port}"})
        return link

    def _open(self, watch: _Watch) -> None:
        """Open (share) the watch's tagger ("" : the open or first one) and start our Countrate on it."""
        assert self._link is not None
        library = self._link.library
        watch.tagger = library.createTimeTagger(watch.serial) if watch.serial else library.createTimeTagger()
        watch.tagger._pyroTimeout = self.settings.timeout_s
        watch.serial = str(watch.tagger.getSerial())
        watch.channels = list(self.settings.channels) or [c for c in watch.tagger.getChannelList() if c > 0]
        watch.countrate = library.Countrate(watch.tagger, watch.channels)
        watch.countrate._pyroTimeout = self.settings.timeout_s

    def _drop(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def _log_failure(self, serial: str | None, exc: Exception) -> None:
        """Log a failure once, when it starts; ``serial`` None is the server itself."""
        key = "server" if serial is None else f"tagger {serial}"
        if key not in self._failing:
            extra = {"server": f"{self.host}:{self.port}", "error": f"{type(exc).__name__}: {exc}"}
            if serial is None:
                log.warning("server unavailable", extra=extra)
            else:
                log.warning("tagger unavailable", extra={**extra, "serial": serial})
        self._failing.add(key)

    def _log_recovery(self, serial: str | None) -> None:
        key = "server" if serial is None else f"tagger {serial}"
        if key in self._failing:
            self._failing.discard(key)
            log.info("recovered", extra={"server": f"{self.host}:{self.port}", "serial": serial or ""})

    def close(self) -> None:
        with self._lock:
            self._drop()
        self._pool.shutdown(wait=True)

    # -- reading --------------------------------------------------------------------
    def _read_rates(self, watch: _Watch) -> dict[int, float]:
        """Average rates since the previous scrape, in one round trip (read and clear as a batch).

        Windows shorter than ``rate_window_s`` (several Prometheus servers, or
        very fast scrapes) are pooled until long enough; meanwhile the last
        rates are repeated.
        """
        batch = BatchProxy(watch.countrate)
        batch.getData()
        batch.getCaptureDuration()
        batch.clear()
        rates, window_ps, _ = batch()
        watch.pending_ps += int(window_ps)
        for channel, rate in zip(watch.channels, rates, strict=True):
            watch.pending_counts[channel] = watch.pending_counts.get(channel, 0.0) + float(rate) * int(window_ps)
        if watch.pending_ps >= self.settings.rate_window_s * PS_PER_S:
            watch.last_rates = {ch: n / watch.pending_ps for ch, n in watch.pending_counts.items()}
            watch.pending_ps, watch.pending_counts = 0, {}
        return dict(watch.last_rates)

    def _wanted(self, metrics: dict[str, Any] | None) -> list[str]:
        """Serials to watch: the configured one, else every open tagger ("" : let the server pick)."""
        if self.settings.serial:
            return [self.settings.serial]
        serials = open_serials(metrics) if metrics else []
        return serials or ([] if self._link and self._link.watches else [""])

    def read(self) -> Reading:
        """Ask the server for everything once; on any failure drop the connection (and so our objects).

        Each watched tagger's count rates (on its Countrate's own connection) and
        the server's figures are fetched side by side, so a scrape costs one
        round trip however many taggers the PC has. A failing tagger reads as
        down in this scrape; the next one reconnects and opens it again.
        """
        started = time.perf_counter()
        reading = Reading()
        with self._lock:
            results: dict[str, TaggerReading] = {}
            rates: dict[str, Future[dict[int, float]]] = {}
            try:
                if self._link is None:
                    self._link = self._connect()
                if not self._link.watches:
                    # Before hub_metrics, so that the first scrape already lists the device.
                    for serial in self._wanted(None):
                        self._try_watch(serial, results)
                rates = {s: self._pool.submit(self._read_rates, w) for s, w in self._link.watches.items()
                         if s not in results}
                reading.metrics = self._link.library.hub_metrics()
                self._log_recovery(None)
            except Exception as exc:
                if rates:
                    wait(rates.values())  # the link is closed below; let the other calls finish first
                self._log_failure(None, exc)
                self._drop()
            if reading.metrics is not None and self._link is not None:
                for serial, future in rates.items():
                    results[serial] = self._finish(serial, future, reading.metrics)
                for serial in self._wanted(reading.metrics):
                    if serial not in results:  # opened by someone since the last scrape: rates from the next
                        self._try_watch(serial, results)
                reading.taggers = list(results.values())
                if not all(t.ok for t in reading.taggers):
                    self._drop()  # frees what we made on the server; everything is reopened next scrape
            else:
                reading.taggers = [TaggerReading(serial=s) for s in self._last_serials]
            self._last_serials = [t.serial for t in reading.taggers if t.serial]
        reading.duration_s = time.perf_counter() - started
        reading.connects = self.connects
        return reading

    def _try_watch(self, serial: str, results: dict[str, TaggerReading]) -> None:
        assert self._link is not None
        watch = _Watch(serial=serial)
        try:
            self._open(watch)
            self._link.watches[watch.serial] = watch
            results[watch.serial] = TaggerReading(serial=watch.serial, ok=True)
            self._log_recovery(watch.serial)
        except Exception as exc:
            watch.close()
            self._log_failure(watch.serial, exc)
            results[watch.serial] = TaggerReading(serial=watch.serial)

    def _finish(self, serial: str, future: Future[dict[int, float]], metrics: dict[str, Any]) -> TaggerReading:
        """One tagger's rates and overflows (from ``hub_metrics``, or the tagger on older servers)."""
        assert self._link is not None
        try:
            rates = future.result()
            overflows = metrics.get("overflows", {})
            count = int(overflows[serial] if serial in overflows else self._link.watches[serial].tagger.getOverflows())
            self._log_recovery(serial)
            return TaggerReading(serial=serial, ok=True, rates=rates, overflows=count)
        except Exception as exc:
            self._log_failure(serial, exc)
            return TaggerReading(serial=serial)
