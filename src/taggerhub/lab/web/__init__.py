"""``taggerhub web``: a live lab page in the browser, a client of one taggerhub server (docs/web.md).

Built on Starlette (ASGI, WebSockets for the push) served by uvicorn; the page plots with
uPlot, shipped in ``static/vendor`` so nothing is fetched from the internet at run time.
Needs the ``web`` extra: ``pip install 'taggerhub[web]'``.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
import time
from typing import Any

from ...access.tls import client_context
from ...config import ConfigError, WebSettings
from ..exporter import parse_address

log = logging.getLogger("taggerhub.web")


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address (unresolvable: no)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)


def build(settings: WebSettings) -> tuple[Any, str, int]:
    """The ASGI app and where to listen; refuses a non-loopback address without HTTPS unless ``insecure``."""
    from .app import create_app
    from .link import Target

    host, port = parse_address(settings.listen, "web.listen")
    server_host, server_port = parse_address(settings.server, "web.server")
    if bool(settings.cert_file) != bool(settings.key_file):
        raise ConfigError("web.cert_file and web.key_file go together (HTTPS for the page)")
    if settings.tls_cert and not settings.tls_ca:
        raise ConfigError("web.tls_cert needs web.tls_ca: a client certificate is only sent over TLS")
    if not settings.cert_file and not is_loopback(host):
        if not settings.insecure:
            raise ConfigError(f"refusing to serve the page on {host!r} (beyond loopback) without HTTPS: tokens "
                              "would cross the network in clear; set web.cert_file/key_file (or --insecure)")
        log.warning("INSECURE: serving the page beyond loopback without HTTPS", extra={"host": host})
    if not 0 < settings.update_hz <= 50:
        raise ConfigError(f"web.update_hz must be in (0, 50], got {settings.update_hz}")
    context = client_context(settings.tls_ca, settings.tls_cert, settings.tls_key) if settings.tls_ca else None
    target = Target(server_host, server_port, context, settings.timeout_s)
    return create_app(settings, target, cert_login=bool(settings.tls_cert)), host, port


def _server(settings: WebSettings) -> Any:
    import uvicorn

    app, host, port = build(settings)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", ws="websockets-sansio",
                            ssl_certfile=settings.cert_file or None, ssl_keyfile=settings.key_file or None,
                            lifespan="off")
    return uvicorn.Server(config)


def bind(host: str, port: int) -> socket.socket:
    """The page's listening socket, bound now: a taken address is one line naming it and the fix (exit 2)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restarts find TIME_WAIT
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = ("the port is already in use (another taggerhub web, or another program)"
               if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc)))
        raise ConfigError(f"cannot listen on {host}:{port} for the page: {why}; stop it, or choose another "
                          "address with --listen or [web] listen") from None
    return sock


def serve(settings: WebSettings) -> int:
    """Serve the page until SIGINT/SIGTERM (uvicorn handles both)."""
    server = _server(settings)
    host, port = parse_address(settings.listen, "web.listen")
    sock = bind(host, port)
    scheme = "https" if settings.cert_file else "http"
    log.info("serving the lab page", extra={"url": f"{scheme}://{settings.listen}/", "server": settings.server})
    server.run(sockets=[sock])
    return 0


class WebContext:
    """``with WebContext(settings) as web: web.url``: the page served on a thread (tests, benchmarks)."""

    def __init__(self, settings: WebSettings):
        self.settings = settings
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WebContext:
        self._server = _server(self.settings)
        self._thread = threading.Thread(target=self._server.run, name="taggerhub-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the web page server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    @property
    def port(self) -> int:
        sockets = [s for server in self._server.servers for s in server.sockets]
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.cert_file else "http"
        return f"{scheme}://127.0.0.1:{self.port}"
