"""The exporter's collector: metric families from one :class:`Reading`, and nothing else.

As prometheus client_python's ``ProcessCollector`` reads a swappable ``/proc``,
:class:`TaggerhubCollector` takes its readings from a swappable source: the
:class:`~.reader.ServerReader` in production, recorded readings in tests
(:class:`RecordedSource`). ``collect()`` asks the source for one reading and
formats it with :func:`families`, which does no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ...config import ExporterSettings
from .reader import Reading, ReadingSource, ServerReader


class TaggerhubCollector(Collector):
    """Collects one reading per scrape from ``source`` (default: a :class:`ServerReader` on ``settings``)."""

    def __init__(self, settings: ExporterSettings | None = None, *, source: ReadingSource | None = None,
                 show_users: bool = True):
        if source is None:
            if settings is None:
                raise TypeError("TaggerhubCollector needs settings (to read a server) or a source")
            source = ServerReader(settings)
        self.source = source
        self.show_users = show_users  # False: sessions as one total, no user names or roles

    def describe(self) -> Iterable[Metric]:
        return []  # no remote calls at registration

    def collect(self) -> Iterator[Metric]:
        yield from families(self.source.read(), show_users=self.show_users)

    def close(self) -> None:
        """Close the source: the reader ends its session, so the server frees our Countrates."""
        self.source.close()


class RecordedSource:
    """Readings recorded earlier (``Reading.as_dict()`` as JSON), replayed in order; the last one repeats."""

    def __init__(self, readings: Sequence[Reading]):
        if not readings:
            raise ValueError("RecordedSource needs at least one reading")
        self._readings = list(readings)
        self._next = 0

    @classmethod
    def from_json(cls, path: str | Path) -> RecordedSource:
        """A fixture file holding one reading (an object) or several (a list)."""
        data: Any = json.loads(Path(path).read_text())
        return cls([Reading.from_dict(d) for d in (data if isinstance(data, list) else [data])])

    def read(self) -> Reading:
        reading = self._readings[min(self._next, len(self._readings) - 1)]
        self._next += 1
        return reading

    def close(self) -> None:
        pass


def families(reading: Reading, *, show_users: bool = True) -> Iterator[Metric]:
    """Turn one reading into metric families: a pure function, so fixtures test it without a server.

    With ``show_users`` off, ``taggerhub_client_sessions`` is one unlabelled total: who is
    connected, and with which role, is only for scrapers allowed to see it (docs/monitoring.md).

    Names follow the Prometheus conventions: ``taggerhub_`` prefix, base units in the
    name (``_seconds``, ``_hertz``), counters exposed with ``_total``.
    """
    m = reading.metrics
    server_up = m is not None
    yield GaugeMetricFamily("taggerhub_up", "1 when the server answered and every watched tagger could be read.",
                            value=int(server_up and reading.tagger_ok))
    yield GaugeMetricFamily("taggerhub_server_up", "1 when the taggerhub server answered the last scrape.",
                            value=int(server_up))
    yield GaugeMetricFamily("taggerhub_exporter_scrape_duration_seconds",
                            "Time this scrape spent asking the server.", value=reading.duration_s)
    yield CounterMetricFamily("taggerhub_exporter_connects", "Connections the exporter made to the server.",
                              value=reading.connects)
    named = [t for t in reading.taggers if t.serial]
    if named:
        up = GaugeMetricFamily("taggerhub_tagger_up", "1 when the watched tagger could be read.", labels=["serial"])
        for t in named:
            up.add_metric([t.serial], int(server_up and t.ok))
        yield up
    read = [t for t in named if t.ok and server_up]
    if read:
        rate = GaugeMetricFamily("taggerhub_channel_count_rate_hertz",
                                 "Count rate per input channel since the previous scrape, in Hz.",
                                 labels=["serial", "channel"])
        for t in read:
            for channel, value in sorted(t.rates.items()):
                rate.add_metric([t.serial, str(channel)], value)
        yield rate
        counted = [t for t in read if t.overflows is not None]
        if counted:
            overflows = CounterMetricFamily("taggerhub_tagger_overflows",
                                            "Overflows reported by the tagger since it was opened or last cleared.",
                                            labels=["serial"])
            for t in counted:
                overflows.add_metric([t.serial], t.overflows)
            yield overflows
    if m is None:
        return
    yield from _server_families(m, reading, show_users)


def _sessions(m: dict[str, Any], show_users: bool) -> Metric:
    if not show_users:
        return GaugeMetricFamily("taggerhub_client_sessions", "Connected client sessions (all users together).",
                                 value=sum(n for _user, _role, n in m.get("sessions", [])))
    sessions = GaugeMetricFamily("taggerhub_client_sessions", "Connected client sessions by user and role.",
                                 labels=["user", "role"])
    for user, role, n in m.get("sessions", []):
        sessions.add_metric([str(user), str(role)], n)
    return sessions


def _server_families(m: dict[str, Any], reading: Reading, show_users: bool) -> Iterator[Metric]:
    status, rpc = m["status"], m["rpc"]
    info = InfoMetricFamily("taggerhub_tagger", "The open tagger: serial, model, backend and library version.",
                            labels=["serial", "model", "backend", "library_version", "server_version"])
    for device in status.get("devices", []):
        info.add_metric([], {
            "serial": str(device["serial"]), "model": str(device["model"]), "backend": str(status["backend"]),
            "library_version": str(status["backend_version"]), "server_version": str(status["version"]),
        })
    yield info

    yield _sessions(m, show_users)

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

    streams = m.get("streams")
    if streams is not None:  # servers before the tag stream have none
        yield from _stream_families(streams)

    yield CounterMetricFamily("taggerhub_server_connections", "Connections the server accepted since it started.",
                              value=rpc.get("connections_total", 0))
    yield GaugeMetricFamily("taggerhub_server_start_time_seconds", "When the server started, in Unix seconds.",
                            value=rpc["started_at"])


def _stream_families(streams: dict[str, Any]) -> Iterator[Metric]:
    """The tag stream (issue 16): subscribers now, records sent, and tags dropped for subscribers that fell behind.

    Totals over every stream, closed ones included, so the counters only grow while the server runs;
    who lost what is in the audit log (``stream_close``) and ``hub_stream_state``, not in labels.
    """
    yield GaugeMetricFamily("taggerhub_stream_subscribers",
                            "Tag stream subscribers now (remote TT.CustomMeasurement, TagStream).",
                            value=streams.get("subscribers", 0))
    yield CounterMetricFamily("taggerhub_stream_tags_sent",
                              "Tag records the server sent to stream subscribers, overflow markers included.",
                              value=streams.get("tags_sent", 0))
    yield CounterMetricFamily("taggerhub_stream_tags_lost",
                              "Tags dropped for stream subscribers that fell behind (marked to them as missed "
                              "events; the device and other clients are not slowed).",
                              value=streams.get("tags_lost", 0))
