"""The lab's taggers for ``taggerhub ls``: name-server entries joined with each server's own status.

The name server says which taggers exist and where (:mod:`taggerhub.wire.naming`);
each server, asked once per listing through ``hub_metrics()`` (or
``hub_status()`` when the caller may not read metrics), says whether it answers,
which of its devices are open and who is connected.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import Pyro5.errors
from Pyro5 import config as pyro_config

from ..client import env as client_env
from ..client.proxy import createProxy
from ..errors import AccessDenied
from ..wire import addresses, naming


@dataclass
class TaggerRow:
    """One tagger of the lab as ``taggerhub ls`` shows it."""

    name: str
    host: str
    model: str
    serial: str
    uri: str
    aliases: list[str] = field(default_factory=list)
    status: str = "unreachable"  # "open", "free", "refused" (no/bad token, TLS), "unreachable" or "stale"
    users: list[str] = field(default_factory=list)  # users connected to the tagger's server
    sessions: int = 0
    age_s: float = 0.0  # since its server last renewed the entry
    error: str = ""  # why the server did not answer

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(uri: str, token: str | None, tls_ca: str | None) -> dict[str, Any]:
    """A server's status and connected users; {"error": ...} when it does not answer or refuses us."""
    token = client_env.token(token)
    try:
        host, port = addresses.parse_host_port(uri.partition("@")[2], "name-server entry URI")
        proxy = createProxy(host=host, port=port, token=token, tls_ca=tls_ca)
        try:
            metrics = proxy.hub_metrics()
            status, users = metrics["status"], {u: n for u, _role, n in metrics["sessions"]}
        except AccessDenied:
            status, users = proxy.hub_status(), {}
        me = _my_user(proxy, token)
        proxy._pyroRelease()
    except AccessDenied as exc:
        return {"error": f"refused: {exc}", "refused": True}
    except Pyro5.errors.CommunicationError as exc:
        # A handshake refusal (no or bad token, TLS) means the server is up but will not talk to us.
        return {"error": str(exc), "refused": "rejected" in str(exc) or "handshake" in str(exc)}
    except (Pyro5.errors.PyroError, OSError, ValueError) as exc:
        return {"error": str(exc), "refused": False}
    # This listing's own connection is not a user of the tagger.
    status = {**status, "sessions": max(0, status["sessions"] - 1)}
    if me in users:
        users[me] -= 1
    return {"status": status, "users": [(u, n) for u, n in sorted(users.items()) if n > 0]}


def _my_user(proxy: Any, token: str | None) -> str:
    """The user this listing connects as: from hub_sessions() (admins), else anonymous without a token."""
    try:
        return next(row["user"] for row in proxy.hub_sessions() if row["you"])
    except (AccessDenied, StopIteration):
        return token.rpartition(".")[0] if token else "anonymous"  # tokens are "<user>.<secret>"


def listing(ns_host: str, ns_port: int, token: str | None = None, tls_ca: str | None = None,
            stale_after_s: float = 30.0, prune: bool = False) -> list[TaggerRow]:
    """Every tagger in the name server with its status; with ``prune``, stale entries are removed first."""
    saved = pyro_config.COMMTIMEOUT
    pyro_config.COMMTIMEOUT = naming.NS_TIMEOUT_S  # a hung server must not hang the listing
    try:
        ns = naming.locate(ns_host, ns_port)
        if prune:
            naming.prune(ns, stale_after_s)
        all_entries = naming.entries(ns)
        ns._pyroRelease()
        rows: dict[tuple[str, str], TaggerRow] = {}
        now = time.time()
        for entry in all_entries:
            key = (entry.host, entry.serial)
            row = rows.get(key)
            if row is None:
                row = rows[key] = TaggerRow(name=naming.tagger_name(entry.host, entry.serial), host=entry.host,
                                            model=entry.model, serial=entry.serial, uri=entry.uri,
                                            age_s=round(now - entry.seen, 1) if entry.seen else 0.0)
            if entry.kind == "alias":
                row.aliases.append(entry.name)
        servers = {uri: probe(uri, token, tls_ca) for uri in sorted({r.uri for r in rows.values()})}
        for row in rows.values():
            found = servers[row.uri]
            if "error" in found:
                row.error = found["error"]
                row.status = ("refused" if found["refused"] else
                              "stale" if row.age_s > stale_after_s else "unreachable")
                continue
            open_serials = {d["serial"] for d in found["status"]["devices"]}
            row.status = "open" if row.serial in open_serials else "free"
            row.sessions = found["status"]["sessions"]
            row.users = [f"{user}({n})" if n > 1 else user for user, n in found["users"]]
    finally:
        pyro_config.COMMTIMEOUT = saved
    return sorted(rows.values(), key=lambda r: (r.host, r.serial))


def format_table(rows: list[TaggerRow]) -> str:
    """Rows as an aligned text table."""
    header = ("NAME", "ALIASES", "HOST", "MODEL", "SERIAL", "STATUS", "USERS")
    lines = [header] + [(r.name, ",".join(r.aliases) or "-", r.host, r.model, r.serial, r.status,
                         ",".join(r.users) or "-") for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)
