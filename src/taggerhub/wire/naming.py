"""Finding taggers in a lab through Pyro5's name server.

Each server registers every tagger it serves as ``taggerhub.<host>.<serial>``
(plus lab-chosen aliases) pointing at its library object; the entry's metadata
carries host, model, serial and when it was last renewed. A :class:`Registrar`
thread renews the entries every few seconds, so they come back by themselves
after the name server restarts, and it prunes other servers' entries that
nobody renewed for a while (their server is gone). Clients resolve a name with
:func:`resolve`. Only Pyro5 and the settings are used here; nothing above. The name
server's address is always passed in: the client reads ``$TAGGERHUB_NS`` (``client.env``),
the CLI its options and settings.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import Pyro5.api
import Pyro5.errors

from ..config import DiscoverySettings
from .addresses import format_host_port, parse_host_port

log = logging.getLogger("taggerhub.discovery")
PREFIX = "taggerhub."
TAG = "taggerhub"  # every taggerhub entry carries this metadata string (yplookup finds them all)
NS_DEFAULT_PORT = 9090  # Pyro5's default name server port
NS_TIMEOUT_S = 2.0


def tagger_name(host: str, serial: str) -> str:
    """The stable name of a tagger: ``taggerhub.<host>.<serial>``."""
    return f"{PREFIX}{host}.{serial}"


def default_host_name() -> str:
    """This PC's short host name (no domain), as used in tagger names."""
    return socket.gethostname().split(".")[0] or "localhost"


def parse_ns_address(address: str | None, default_port: int = NS_DEFAULT_PORT) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[V6]:PORT`` too; empty or None: ``localhost:9090``) as a (host, port) pair."""
    return parse_host_port(address or "", "name server address", default_port=default_port)


def metadata(**values: Any) -> set[str]:
    """Metadata strings for an entry: ``taggerhub`` plus ``taggerhub:<key>=<value>`` for each value."""
    return {TAG} | {f"{TAG}:{key}={value}" for key, value in values.items()}


def parse_metadata(strings: Iterable[str]) -> dict[str, str]:
    """The ``taggerhub:<key>=<value>`` strings of an entry as a dict."""
    values = {}
    for item in strings or ():
        if isinstance(item, str) and item.startswith(TAG + ":"):
            key, _, value = item[len(TAG) + 1:].partition("=")
            values[key] = value
    return values


@dataclass
class Entry:
    """One name in the name server that points at a taggerhub server's library."""

    name: str
    uri: str
    host: str = "?"
    serial: str = ""
    model: str = "?"
    kind: str = "name"  # "name" (taggerhub.<host>.<serial>) or "alias"
    seen: float = 0.0  # when its server last renewed it (server's clock)
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_ns(cls, name: str, uri: Any, meta: Iterable[str]) -> Entry:
        values = parse_metadata(meta)
        try:
            seen = float(values.get("seen", 0))
        except ValueError:
            seen = 0.0
        return cls(name=name, uri=str(uri), host=values.get("host", "?"), serial=values.get("serial", ""),
                   model=values.get("model", "?"), kind=values.get("kind", "name"), seen=seen, extra=values)


def locate(host: str, port: int) -> Pyro5.api.Proxy:
    """A proxy of the name server at host:port (no broadcast), or NamingError."""
    ns = Pyro5.api.locate_ns(host, port, broadcast=False)
    ns._pyroTimeout = NS_TIMEOUT_S
    return ns


def entries(ns: Pyro5.api.Proxy) -> list[Entry]:
    """Every taggerhub entry in the name server."""
    found = ns.yplookup(meta_all={TAG}, return_metadata=True)
    return sorted((Entry.from_ns(name, uri, meta) for name, (uri, meta) in found.items()), key=lambda e: e.name)


def prune(ns: Pyro5.api.Proxy, stale_after_s: float, keep: Iterable[str] = (), now: float | None = None) -> list[str]:
    """Remove entries not renewed for ``stale_after_s`` (their server is gone); return their names."""
    now = time.time() if now is None else now
    keep = set(keep)
    removed = []
    for entry in entries(ns):
        if entry.name not in keep and entry.seen and now - entry.seen > stale_after_s:
            ns.remove(entry.name)
            removed.append(entry.name)
    return removed


def resolve(name: str, ns_host: str | None = None, ns_port: int | None = None) -> Entry:
    """Look a tagger name or alias up in the name server at ``ns_host`` (``HOST[:PORT]``; None: localhost:9090).

    ``ns_port``, when given, overrides the port in ``ns_host``.
    """
    host, port = parse_ns_address(ns_host)
    port = ns_port or port
    try:
        ns = locate(host, port)
    except Pyro5.errors.NamingError as exc:
        raise LookupError(f"cannot look up tagger {name!r}: no name server at {format_host_port(host, port)} "
                          f"({exc})") from None
    try:
        uri, meta = ns.lookup(name, return_metadata=True)
    except Pyro5.errors.NamingError as exc:
        raise LookupError(f"tagger {name!r} not found in the name server at {format_host_port(host, port)}: "
                          f"{exc}") from None
    finally:
        ns._pyroRelease()
    return Entry.from_ns(name, uri, meta)


def parse_aliases(aliases: Iterable[str]) -> dict[str, str]:
    """``ALIAS=SERIAL`` settings as {alias: serial}."""
    return {a.split("=", 1)[0].strip(): a.split("=", 1)[1].strip() for a in aliases}


class Registrar:
    """Keeps this server's taggers registered in the name server while the server runs.

    ``devices()`` returns (serial, model) for every tagger the server can serve; it is
    asked on every renewal, so devices plugged in later appear and unplugged ones go.
    A missing name server is logged once and retried; serving never depends on it.
    """

    def __init__(self, settings: DiscoverySettings, uri: str, devices: Callable[[], list[tuple[str, str]]]):
        self.settings = settings
        self.uri = uri
        self.devices = devices
        self.host = settings.host_name or default_host_name()
        self.aliases = parse_aliases(settings.aliases)
        self._registered: set[str] = set()
        self._ns: Pyro5.api.Proxy | None = None
        self._down = False
        self._announced = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taggerhub-discovery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop renewing and remove this server's names (done on the registrar's own thread)."""
        self._stop.set()
        self._thread.join(timeout_s)

    def wanted(self) -> dict[str, set[str]]:
        """The names this server should hold now, with their metadata."""
        now = f"{time.time():.3f}"
        names = {}
        for serial, model in self.devices():
            names[tagger_name(self.host, serial)] = metadata(host=self.host, serial=serial, model=model,
                                                             kind="name", seen=now)
            for alias, alias_serial in self.aliases.items():
                if alias_serial == serial:
                    names[alias] = metadata(host=self.host, serial=serial, model=model, kind="alias",
                                            seen=now, of=tagger_name(self.host, serial))
        return names

    def refresh(self) -> None:
        """Register every wanted name (again), drop names no longer wanted, prune stale entries."""
        if self._ns is None:
            self._ns = locate(self.settings.ns_host, self.settings.ns_port)
        wanted = self.wanted()
        for name, meta in wanted.items():
            self._ns.register(name, self.uri, safe=False, metadata=meta)
        for name in self._registered - set(wanted):
            self._ns.remove(name)
        self._registered = set(wanted)
        removed = prune(self._ns, self.settings.stale_after_s, keep=wanted)
        if removed:
            log.info("stale names removed", extra={"names": removed})

    def _run(self) -> None:
        while True:
            try:
                self.refresh()
                if self._down or not self._announced:
                    log.info("registered with the name server", extra={
                        "ns": format_host_port(self.settings.ns_host, self.settings.ns_port),
                        "names": sorted(self._registered),
                    })
                self._down, self._announced = False, True
            except (Pyro5.errors.PyroError, OSError) as exc:
                self._drop_ns()
                if not self._down:
                    log.warning("name server not reachable; serving on, retrying", extra={
                        "ns": format_host_port(self.settings.ns_host, self.settings.ns_port), "error": str(exc),
                    })
                self._down = True
            except Exception as exc:  # e.g. the device library failing to scan: keep the thread alive
                log.exception("registration failed; retrying", extra={"error": str(exc)})
            if self._stop.wait(self.settings.refresh_s):
                break
        self._unregister()

    def _drop_ns(self) -> None:
        if self._ns is not None:
            self._ns._pyroRelease()
            self._ns = None

    def _unregister(self) -> None:
        try:
            ns = self._ns or locate(self.settings.ns_host, self.settings.ns_port)
            for name in sorted(self._registered):
                uri = ns.lookup(name)
                if str(uri) == self.uri:  # not a name someone else took over meanwhile
                    ns.remove(name)
            log.info("unregistered from the name server", extra={"names": sorted(self._registered)})
        except (Pyro5.errors.PyroError, OSError) as exc:
            log.warning("could not unregister from the name server", extra={"error": str(exc)})
        finally:
            self._drop_ns()
