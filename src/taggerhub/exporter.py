"""Prometheus exporter: a monitoring client of the taggerhub server that serves ``/metrics``.

The exporter connects to the server like any other client, opens the shared
tagger (``createTimeTagger()`` hands out the already open device) and keeps a
server-side ``Countrate`` of its own on the watched channels. Every scrape asks
the server for all its figures in one call (``hub_metrics``) and reads the
``Countrate``; :class:`TaggerhubCollector` turns the answers into metric
families at that moment, so nothing is cached between scrapes except the last
count rates when scrapes come faster than ``rate_window_s``.

When the server or the device is gone, a scrape still answers, with
``taggerhub_up 0``; the next scrape reconnects and recreates the ``Countrate``,
so the exporter never needs a restart. Every RPC has a short timeout, so a
scrape never hangs on a dead server.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from Pyro5 import config as pyro_config
from Pyro5.api import BatchProxy

from . import client, transport
from .config import ExporterSettings
from .tls import client_context

log = logging.getLogger("taggerhub.exporter")
PS_PER_S = 1e12
OBJECT_ID = "TimeTaggerRPC"


def parse_address(text: str, what: str, default_host: str = "localhost") -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` too) and say which option is wrong if it cannot be parsed."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or default_host
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"{what} must be HOST:PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"{what} port must be 0..65535, got {number}")
    return host, number


def parse_channels(text: str) -> list[int]:
    """``"1,2,-3"`` -> ``[1, 2, -3]``, naming the bad item."""
    channels = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            channels.append(int(part))
        except ValueError:
            raise ValueError(f"--channels must be comma-separated channel numbers, got {part!r}") from None
    return channels


@dataclass
class _Link:
    """One live connection to the server: the library, the watched tagger and our Countrate."""

    library: Any
    tagger: Any = None
    countrate: Any = None
    serial: str = ""
    channels: list[int] = field(default_factory=list)

    def close(self) -> None:
        # Closing every connection ends our session, so the server frees our Countrate.
        for proxy in (self.countrate, self.tagger, self.library):
            if proxy is not None:
                with contextlib.suppress(Exception):
                    proxy._pyroRelease()


@dataclass
class Reading:
    """What one scrape learned; ``metrics`` is None when the server did not answer."""

    metrics: dict[str, Any] | None = None
    tagger_ok: bool = False
    serial: str = ""
    rates: dict[int, float] = field(default_factory=dict)
    overflows: int | None = None
    duration_s: float = 0.0


class TaggerhubCollector(Collector):
    """Reads the server's figures and the watched tagger's count rates at scrape time."""

    def __init__(self, settings: ExporterSettings):
        self.settings = settings
        self.host, self.port = parse_address(settings.server, "exporter.server")
        # Built once, so that a bad certificate path stops the exporter at start, not at every scrape.
        self._ssl = client_context(settings.tls_ca, settings.tls_cert, settings.tls_key) if settings.tls_ca else None
        self._lock = threading.Lock()  # one scrape at a time: the Countrate window is shared
        self._link: _Link | None = None
        self._last_rates: dict[int, float] = {}
        self._pending_ps = 0  # count-rate windows too short to publish yet
        self._pending_counts: dict[int, float] = {}
        self._last_serial = settings.serial
        self.connects = 0
        self._healthy = True
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="taggerhub-exporter")

    # -- connection -----------------------------------------------------------------
    def _make_proxy(self, uri: str, token: str | None) -> Any:
        transport.install()
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

    def _open_tagger(self, link: _Link) -> None:
        """Open (share) the tagger and start our own Countrate on the watched channels."""
        tagger = link.library.createTimeTagger(self.settings.serial) if self.settings.serial \
            else link.library.createTimeTagger()
        tagger._pyroTimeout = self.settings.timeout_s
        link.tagger = tagger
        link.serial = str(tagger.getSerial())
        link.channels = list(self.settings.channels) or [c for c in tagger.getChannelList() if c > 0]
        link.countrate = link.library.Countrate(tagger, link.channels)
        link.countrate._pyroTimeout = self.settings.timeout_s
        self._last_rates, self._pending_ps, self._pending_counts = {}, 0, {}
        self._last_serial = link.serial

    def _drop(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
        self._last_rates = {}

    def _failed(self, what: str, exc: Exception) -> None:
        if self._healthy:  # log the change, not every scrape while down
            log.warning(what, extra={"server": f"{self.host}:{self.port}", "error": f"{type(exc).__name__}: {exc}"})
        self._healthy = False
        self._drop()

    def close(self) -> None:
        with self._lock:
            self._drop()
        self._pool.shutdown(wait=True)

    # -- reading --------------------------------------------------------------------
    def _read_rates(self, link: _Link) -> dict[int, float]:
        """Average rates since the previous scrape, in one round trip (read and clear as a batch).

        Windows shorter than ``rate_window_s`` (several Prometheus servers, or
        very fast scrapes) are pooled until long enough; meanwhile the last
        rates are repeated.
        """
        batch = BatchProxy(link.countrate)
        batch.getData()
        batch.getCaptureDuration()
        batch.clear()
        rates, window_ps, _ = batch()
        self._pending_ps += int(window_ps)
        for channel, rate in zip(link.channels, rates, strict=True):
            self._pending_counts[channel] = self._pending_counts.get(channel, 0.0) + float(rate) * int(window_ps)
        if self._pending_ps >= self.settings.rate_window_s * PS_PER_S:
            self._last_rates = {ch: n / self._pending_ps for ch, n in self._pending_counts.items()}
            self._pending_ps, self._pending_counts = 0, {}
        return dict(self._last_rates)

    def read(self) -> Reading:
        """Ask the server for everything once; drop the connection on any failure.

        The count rates (on the Countrate's own connection) and the server's
        figures are fetched side by side, so a busy server delays a scrape by
        one queued call, not two.
        """
        started = time.perf_counter()
        reading = Reading(serial=self._last_serial)
        with self._lock:
            tagger_error: Exception | None = None
            rates: Future[dict[int, float]] | None = None
            try:
                if self._link is None:
                    self._link = self._connect()
                if self._link.countrate is None:
                    try:  # before hub_metrics, so that the first scrape already lists the device
                        self._open_tagger(self._link)
                    except Exception as exc:
                        tagger_error = exc
                if self._link.countrate is not None:
                    rates = self._pool.submit(self._read_rates, self._link)
                reading.metrics = self._link.library.hub_metrics()
            except Exception as exc:
                if rates is not None:
                    wait([rates])  # the link is closed below; let the other call finish first
                self._failed("server unavailable", exc)
            if reading.metrics is not None and self._link is not None:
                try:
                    if tagger_error is not None:
                        raise tagger_error
                    assert rates is not None
                    reading.serial = self._link.serial
                    reading.rates = rates.result()
                    overflows = reading.metrics.get("overflows", {})
                    reading.overflows = int(overflows[reading.serial] if reading.serial in overflows
                                            else self._link.tagger.getOverflows())  # older servers
                    reading.tagger_ok = True
                    if not self._healthy:
                        log.info("recovered", extra={"server": f"{self.host}:{self.port}", "serial": reading.serial})
                    self._healthy = True
                except Exception as exc:
                    self._failed("tagger unavailable", exc)  # reconnect, recreate the Countrate next scrape
        reading.duration_s = time.perf_counter() - started
        return reading

    # -- Collector ------------------------------------------------------------------
    def describe(self) -> Iterable[Metric]:
        return []  # no remote calls at registration

    def collect(self) -> Iterator[Metric]:
        yield from families(self.read(), self.connects)


def families(reading: Reading, connects: int = 0) -> Iterator[Metric]:
    """Turn one reading into metric families (names per Prometheus conventions)."""
    m = reading.metrics
    server_up = m is not None
    yield GaugeMetricFamily("taggerhub_up", "1 when the server answered and the watched tagger could be read.",
                            value=int(server_up and reading.tagger_ok))
    yield GaugeMetricFamily("taggerhub_server_up", "1 when the taggerhub server answered the last scrape.",
                            value=int(server_up))
    yield GaugeMetricFamily("taggerhub_exporter_scrape_duration_seconds",
                            "Time this scrape spent asking the server.", value=reading.duration_s)
    yield CounterMetricFamily("taggerhub_exporter_connects", "Connections the exporter made to the server.",
                              value=connects)
    if reading.serial:
        up = GaugeMetricFamily("taggerhub_tagger_up", "1 when the watched tagger could be read.", labels=["serial"])
        up.add_metric([reading.serial], int(server_up and reading.tagger_ok))
        yield up
    if reading.tagger_ok:
        rate = GaugeMetricFamily("taggerhub_channel_count_rate_hertz",
                                 "Count rate per input channel since the previous scrape, in Hz.",
                                 labels=["serial", "channel"])
        for channel, value in sorted(reading.rates.items()):
            rate.add_metric([reading.serial, str(channel)], value)
        yield rate
        if reading.overflows is not None:
            overflows = CounterMetricFamily("taggerhub_tagger_overflows",
                                            "Overflows reported by the tagger since it was opened or last cleared.",
                                            labels=["serial"])
            overflows.add_metric([reading.serial], reading.overflows)
            yield overflows
    if m is None:
        return
    yield from _server_families(m, reading)


def _server_families(m: dict[str, Any], reading: Reading) -> Iterator[Metric]:
    status, rpc = m["status"], m["rpc"]
    info = InfoMetricFamily("taggerhub_tagger", "The open tagger: serial, model, backend and library version.",
                            labels=["serial", "model", "backend", "library_version", "server_version"])
    for device in status.get("devices", []):
        info.add_metric([], {
            "serial": str(device["serial"]), "model": str(device["model"]), "backend": str(status["backend"]),
            "library_version": str(status["backend_version"]), "server_version": str(status["version"]),
        })
    yield info

    sessions = GaugeMetricFamily("taggerhub_client_sessions", "Connected client sessions by user and role.",
                                 labels=["user", "role"])
    for user, role, n in m.get("sessions", []):
        sessions.add_metric([str(user), str(role)], n)
    yield sessions

    objects = GaugeMetricFamily("taggerhub_server_objects", "Live server-side objects by type.", labels=["type"])
    for type_name, n in sorted(m.get("objects", {}).items()):
        objects.add_metric([str(type_name)], n)
    yield objects

    calls = CounterMetricFamily("taggerhub_rpc_calls", "Remote calls by method and outcome.",
                                labels=["method", "outcome"])
    for method, outcome, n in rpc.get("calls", []):
        calls.add_metric([str(method), str(outcome)], n)
    yield calls

    bounds = list(rpc.get("duration_buckets_s", []))
    durations = HistogramMetricFamily("taggerhub_rpc_duration_seconds", "Time the server spent on remote calls.",
                                      labels=["method"])
    for method, d in sorted(rpc.get("durations", {}).items()):
        cumulative, buckets = 0, []
        for bound, n in zip([*bounds, float("inf")], d["buckets"], strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        durations.add_metric([str(method)], buckets, d["sum_s"])
    yield durations

    refused = CounterMetricFamily("taggerhub_refused_handshakes", "Connections refused at the handshake, by reason.",
                                  labels=["reason"])
    for reason, n in sorted(rpc.get("refused_handshakes", {}).items()):
        refused.add_metric([str(reason)], n)
    yield refused

    yield CounterMetricFamily("taggerhub_server_connections", "Connections the server accepted since it started.",
                              value=rpc.get("connections_total", 0))
    yield GaugeMetricFamily("taggerhub_server_start_time_seconds", "When the server started, in Unix seconds.",
                            value=rpc["started_at"])


def build_registry(collector: TaggerhubCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def run(settings: ExporterSettings, stop: threading.Event | None = None,
        ready: Callable[[str, int], None] | None = None) -> int:
    """Serve /metrics until ``stop`` is set (or forever); returns the exit status."""
    host, port = parse_address(settings.listen, "exporter.listen", default_host="0.0.0.0")
    logging.getLogger("Pyro5.client").setLevel(logging.CRITICAL)  # our own log says when the server is gone
    collector = TaggerhubCollector(settings)
    try:
        server, thread = start_http_server(port, addr=host, registry=build_registry(collector))
    except OSError as exc:
        raise ValueError(f"cannot listen on {settings.listen} (exporter.listen): {exc.strerror}") from None
    bound = server.server_address[1]
    log.info("serving metrics", extra={"listen": f"{host}:{bound}", "server": settings.server})
    if ready:
        ready(host, bound)
    stop = stop or threading.Event()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        collector.close()
    return 0
