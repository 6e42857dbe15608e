"""A real taggerhub server inside the test process, after pytango's ``DeviceTestContext``.

:class:`ServerContext` builds the same hub and daemon as ``taggerhub serve`` and
runs the daemon's request loop on a thread, listening on a free loopback port,
so a test talks to it over a real socket with the real client, but pays no
process start-up and can look inside (``ctx.hub``). The simulator runs on its
virtual clock unless a test asks for the wall clock. The environment is not
read: a context's settings are exactly the defaults plus what the test passes.

Use a subprocess server (``taggerhub serve``) where the test is about the
process itself: signals, exit codes, the command line, the vendor's own server.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from . import client
from .backend.loader import load_backend
from .config import Settings, load_settings
from .logs import JsonLineFormatter
from .server.app import build
from .server.daemon import HubDaemon
from .server.hub import Hub


class _EventLog(logging.Handler):
    """Keeps the server's log events, as the JSON lines ``taggerhub serve`` would print."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonLineFormatter())
        self.lines: list[str] = []
        self._lines_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._lines_lock:
            self.lines.append(line)


class ServerContext:
    """``with ServerContext(auth={...}) as ctx: TT = ctx.proxy(token=...)``: a served simulator in-process."""

    def __init__(self, settings: Settings | None = None, env: Mapping[str, str] | None = None,
                 **sections: Mapping[str, Any]):
        """Settings: ``settings`` as given, or the defaults, then ``env`` (``TAGGERHUB_*`` names), then ``sections``.

        The port is a free one and the simulator's clock virtual unless ``env`` or ``sections`` say otherwise.
        """
        overrides: dict[str, dict[str, Any]] = {"server": {"host": "127.0.0.1", "port": 0}}
        env = dict(env or {})
        env.setdefault("TAGGERHUB_SIMULATOR_CLOCK", "virtual")
        for name, values in sections.items():
            overrides[name] = {**overrides.get(name, {}), **values}
        self.settings = settings or load_settings(None, env=env, overrides=overrides)
        self.hub: Hub | None = None
        self.daemon: HubDaemon | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._events = _EventLog()

    def __enter__(self) -> ServerContext:
        logger = logging.getLogger("taggerhub")
        logger.addHandler(self._events)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        backend = load_backend(self.settings.server.backend, self.settings.simulator)
        self.hub, self.daemon = build(self.settings, backend, self.settings.server.backend)
        self._thread = threading.Thread(target=self.daemon.requestLoop, name="taggerhub-test-server",
                                        args=(lambda: not self._stopping.is_set(),), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> int:
        """Stop as ``taggerhub serve`` does on SIGTERM: end the loop, free every object; return how many.

        Clients' connections are closed too, as the end of a server process closes them: Pyro5's
        worker threads serve an open connection until it closes, and would outlive the server.
        """
        if self.hub is None or self.daemon is None or self._stopping.is_set():
            return 0
        self._stopping.set()
        self.daemon.shutdown()
        if self._thread is not None:
            self._thread.join(10)
        freed = self.hub.free_everything()
        self.hub.sessions.disconnect()
        deadline = time.monotonic() + 5.0
        while self.hub.sessions.connections_of() and time.monotonic() < deadline:
            time.sleep(0.01)  # the workers run their disconnect (logged, audited) and end
        self.hub.access.audit.close()
        logging.getLogger("taggerhub").removeHandler(self._events)
        return freed

    @property
    def port(self) -> int:
        assert self.daemon is not None, "use the context in a with statement"
        return int(self.daemon.sock.getsockname()[1])

    @property
    def uri(self) -> str:
        assert self.daemon is not None, "use the context in a with statement"
        return str(self.daemon.uriFor(self.settings.server.object_id))

    def proxy(self, **kwargs: Any) -> Any:
        """A client proxy of the library object, as ``createProxy`` gives one (token, TLS files as keywords)."""
        return client.createProxy(host="127.0.0.1", port=self.port, **kwargs)

    def log(self) -> str:
        """The server's log so far, one JSON object per line."""
        with self._events._lines_lock:
            return "\n".join(self._events.lines) + "\n"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log().splitlines() if line]
