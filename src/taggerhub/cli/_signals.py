"""How the long-running commands (``nameserver``, ``exporter``) learn that systemd or compose wants them to stop."""

from __future__ import annotations

import signal
import threading


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, for a loop that checks it; the default handlers are replaced."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop
