"""Build and run a server: the hub and its daemon, listening as the settings say, until a stop signal.

:func:`serve` runs the daemon until SIGTERM or SIGINT, then frees every served
object (closing the device) and returns; SIGHUP re-reads the users file.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .. import pyfix
from ..access import tls
from ..config import DiscoverySettings, ServerSettings, Settings
from . import listener
from .daemon import HubDaemon, configure_pyro
from .hub import Hub

log = logging.getLogger("taggerhub.server")


def advertised_address(server: ServerSettings) -> dict[str, Any]:
    """Pyro5's NAT arguments: the address clients use when it is not the bind address (containers)."""
    if not server.advertise_host:
        return {}
    return {"nathost": server.advertise_host, "natport": server.advertise_port}


def build(settings: Settings, backend: ModuleType, backend_name: str) -> tuple[Hub, HubDaemon]:
    """Create the hub and its daemon, listening as the settings say."""
    pyfix.serialize_ast_parse()  # worker threads format tracebacks concurrently
    listener.check_exposure(settings)
    tls_context = tls.server_context(settings.tls) if settings.tls.enabled else None
    configure_pyro(settings.server)
    hub = Hub(backend, settings, backend_name)
    try:
        daemon = HubDaemon(hub, tls_context=tls_context, host=settings.server.host, port=settings.server.port,
                           **advertised_address(settings.server))
    except OSError as exc:  # the bind: one line for the operator (the CLI exits 2), not a traceback
        hub.access.audit.close()
        raise listener.cannot_listen(settings.server.host, settings.server.port, exc) from None
    hub.daemon = daemon
    daemon.register(hub.library, settings.server.object_id)
    return hub, daemon


def serve(settings: Settings, backend: ModuleType, backend_name: str,
          ready: Callable[[str], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT; free the device and return the exit status."""
    hub, daemon = build(settings, backend, backend_name)
    stopping = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
            threading.Thread(target=daemon.shutdown, name="taggerhub-shutdown", daemon=True).start()
            deadline.start()

    deadline = threading.Timer(settings.server.shutdown_timeout_s, _stop_now, (settings.server.shutdown_timeout_s,))
    deadline.daemon = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, lambda _s, _f: _reload_users(hub))
    uri = daemon.uriFor(settings.server.object_id)
    log.info("serving", extra={
        "uri": str(uri), "backend": backend_name, "pid": os.getpid(),
        "host": settings.server.host, "port": daemon.sock.getsockname()[1], "address": daemon.locationStr,
        "auth": settings.auth.enabled, "tls": settings.tls.enabled,
    })
    registrar = start_discovery(settings.discovery, hub, str(uri))
    if ready:
        ready(str(uri))
    try:
        daemon.requestLoop(loopCondition=lambda: not stopping.is_set())
    finally:
        if registrar is not None:
            registrar.stop()
        freed = hub.free_everything()
        log.info("stopped", extra={"objects_freed": freed})
        hub.access.audit.close()
        deadline.cancel()
    return 0


def _stop_now(timeout_s: float) -> None:
    """A stop signal always stops the server: past ``server.shutdown_timeout_s``, exit without cleaning up."""
    log.error("stop took longer than server.shutdown_timeout_s; exiting now", extra={"timeout_s": timeout_s})
    logging.shutdown()
    os._exit(1)


def start_discovery(discovery: DiscoverySettings, hub: Hub, uri: str) -> Any:
    """With [discovery] enabled, keep this server's taggers registered in the Pyro5 name server."""
    if not discovery.enabled:
        return None
    from ..wire.naming import Registrar

    registrar = Registrar(discovery, uri, hub.devices.discoverable)
    registrar.start()
    return registrar


def _reload_users(hub: Hub) -> None:
    """SIGHUP: re-read the users file now (it is also re-read when it changes)."""
    try:
        hub.access.store.load()
        log.info("users reloaded", extra={"users": len(hub.access.store.users())})
    except Exception as exc:  # keep serving with the users we had
        log.error("users file not reloaded", extra={"error": str(exc)})
