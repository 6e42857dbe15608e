"""Open devices, shared: the first client to ask opens a tagger, later ones get the same one.

The registry knows which served adapter stands for which serial, closes the
device when the object table frees that adapter, and answers the questions the
status calls and the name-server registration ask about devices.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ..backend.adapter import Adapter
from .sessions import Session

log = logging.getLogger("taggerhub.server")


class DeviceRegistry:
    """Open taggers by serial; one device, many clients."""

    def __init__(self, backend: ModuleType):
        self.backend = backend
        self._lock = threading.RLock()
        self._closed = threading.Condition(self._lock)  # a device being freed is not open and not yet free
        self._open: dict[str, Adapter] = {}
        self._closing = 0

    def open(self, session: Session, args: tuple, kwargs: dict, serve: Callable[[Any, Session], Adapter],
             use: Callable[[Adapter, Session], None]) -> Adapter:
        """Open the device, or hand out the already open one (``serve`` a new one, ``use`` a shared one)."""
        serial = str(args[0] if args else kwargs.get("serial", "") or "")
        with self._lock:
            adapter = self._open.get(serial) if serial else next(iter(self._open.values()), None)
            if adapter is None:
                self._closed.wait_for(lambda: self._closing == 0, timeout=10)  # a free in flight ends first
                obj = self.backend.createTimeTagger(*args, **kwargs)
                adapter = serve(obj, session)
                self._open[obj.getSerial()] = adapter
                log.info("device opened", extra={
                    "serial": obj.getSerial(), "model": obj.getModel(), "session": session.id,
                })
            else:
                use(adapter, session)
            return adapter

    def release(self, adapter: Adapter) -> bool:
        """The object table freed ``adapter``: close its device if it is one. Return whether it was."""
        with self._lock:
            serial = next((s for s, a in self._open.items() if a is adapter), None)
            if serial is None:
                return False
            del self._open[serial]
            self._closing += 1
        try:
            if adapter._obj is not None:
                log.info("device freed", extra={"serial": serial})
                self.backend.freeTimeTagger(adapter._obj)
        finally:
            with self._lock:
                self._closing -= 1
                self._closed.notify_all()
        return True

    def adapters(self) -> list[Adapter]:
        with self._lock:
            return list(self._open.values())

    def _opened(self) -> list[tuple[str, Any]]:
        with self._lock:
            return [(serial, a._obj) for serial, a in self._open.items()]

    def describe(self) -> list[dict[str, str]]:
        """Serial and model of every open device, for hub_status."""
        return [{"serial": serial, "model": device.getModel() if device is not None else "?"}
                for serial, device in self._opened()]

    def discoverable(self) -> list[tuple[str, str]]:
        """(serial, model) of every tagger this server can serve: the open ones and the free ones."""
        found = {serial: device.getModel() if device is not None else "?" for serial, device in self._opened()}
        for serial in self.backend.scanTimeTagger():
            if serial not in found:
                try:
                    found[serial] = str(self.backend.getTimeTaggerModel(serial))
                except Exception:  # a model we cannot read shows as unknown
                    found[serial] = "?"
        return sorted(found.items())

    def overflows(self) -> dict[str, int]:
        """Overflow count per open device, so the exporter needs no extra call per scrape."""
        overflows = {}
        for serial, device in self._opened():
            if device is None:
                continue
            with contextlib.suppress(Exception):  # a failing device shows as missing, not as an error
                overflows[serial] = int(device.getOverflows())
        return overflows
