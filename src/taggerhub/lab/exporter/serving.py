"""The exporter's HTTP side: ``/metrics`` from prometheus_client's WSGI app, behind scraper checks, until stopped.

prometheus_client's own pieces do the work (``make_wsgi_app``, its threading WSGI server);
what ``start_http_server`` does not offer is added around them: the scraper check
(:mod:`.scrapers`), a choice between two registries (with or without user names) by scraper,
and TLS whose handshake runs in the request's thread with a deadline, so a client that
connects and stays silent cannot hold up the accept loop.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from ...config import ConfigError, ExporterSettings
from ...server.listener import is_loopback
from .collector import TaggerhubCollector
from .reader import parse_address
from .scrapers import ScraperAuth

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


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (our JSON log is the log); a deadline for the TLS handshake and the request."""

    timeout = 10.0

    def log_message(self, format: str, *args: Any) -> None:
        pass


def guarded_app(auth: ScraperAuth, with_users: Callable, without_users: Callable) -> Callable:
    """A WSGI app: 401 for a scraper that is not allowed; user names only for those allowed to see them."""

    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        verdict = auth.check(environ.get("HTTP_AUTHORIZATION"))
        if not verdict.allowed:
            start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                ("WWW-Authenticate", 'Basic realm="taggerhub exporter"')])
            return [b"taggerhub exporter: a scraper credential is required (docs/monitoring.md)\n"]
        chosen = with_users if auth.shows_users(verdict) else without_users
        return chosen(environ, start_response)

    return app


def tls_context(settings: ExporterSettings) -> ssl.SSLContext | None:
    """The HTTPS context for ``cert_file``/``key_file`` (mutual TLS with ``client_ca_file``); None: plain HTTP."""
    if not settings.cert_file and not settings.key_file:
        if settings.client_ca_file:
            raise ConfigError("exporter.client_ca_file needs exporter.cert_file and exporter.key_file (HTTPS)")
        return None
    if not (settings.cert_file and settings.key_file):
        raise ConfigError("exporter.cert_file and exporter.key_file go together (HTTPS needs both)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.cert_file, settings.key_file)
        if settings.client_ca_file:
            context.load_verify_locations(settings.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"exporter TLS files ({settings.cert_file}, {settings.key_file}"
                          f"{', ' + settings.client_ca_file if settings.client_ca_file else ''}): {exc}") from None
    return context


def run(settings: ExporterSettings, stop: threading.Event | None = None,
        ready: Callable[[str, int], None] | None = None) -> int:
    """Serve /metrics until ``stop`` is set (or forever); returns the exit status."""
    host, port = parse_address(settings.listen, "exporter.listen", default_host="localhost")
    auth = ScraperAuth(settings.scrapers, settings.show_users_to)
    context = tls_context(settings)
    logging.getLogger("Pyro5.client").setLevel(logging.CRITICAL)  # our own log says when the server is gone
    collector = TaggerhubCollector(settings)
    aggregate = TaggerhubCollector(source=collector.source, show_users=False)
    app = guarded_app(auth, make_wsgi_app(build_registry(collector)), make_wsgi_app(build_registry(aggregate)))

    class Server(ThreadingWSGIServer):
        address_family = _family(host)

    try:
        server = make_server(host, port, app, Server, handler_class=_QuietHandler)
    except OSError as exc:
        collector.close()
        raise ValueError(f"cannot listen on {settings.listen} (exporter.listen): {exc.strerror}") from None
    if context is not None:
        # The handshake happens on the first read, in the request's thread, under the handler's timeout.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, name="exporter-http", daemon=True)
    thread.start()
    bound = server.server_address[1]
    if not auth.required and not is_loopback(host):
        log.warning("serving metrics beyond loopback to anyone (no exporter.scrapers; docs/monitoring.md)",
                    extra={"listen": f"{host}:{bound}", "user_names": auth.shows_users(auth.check(None))})
    log.info("serving metrics", extra={"listen": f"{host}:{bound}", "server": settings.server,
                                       "https": context is not None, "scrapers": auth.required})
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


def _family(host: str) -> Any:
    """IPv6 for an address with a colon, else IPv4 (as prometheus_client picks it)."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET
