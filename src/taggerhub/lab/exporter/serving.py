"""The exporter's HTTP side: ``/metrics`` served from a registry holding the collector, until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.registry import Collector

from ...config import ExporterSettings
from .collector import TaggerhubCollector
from .reader import parse_address

log = logging.getLogger("taggerhub.exporter")


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


def build_registry(collector: Collector) -> CollectorRegistry:
    """A registry of just this collector; no describe() call, so registering does no remote call."""
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
