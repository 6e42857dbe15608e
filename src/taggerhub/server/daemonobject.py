"""The daemon's own object (``Pyro.Daemon``), with its listing calls limited to admins and audited.

Pyro5's ``DaemonObject.registered()`` lists every object id of every client, and ``info()``
counts them, for anyone connected: an observer could find and read every other user's
measurements. Here admins (or anyone, with auth off) get the full answer; everyone else gets
only their own objects. Both calls are audited. ``get_metadata`` stays open: proxies need it,
and it only describes an object whose id the caller already holds.
"""

from __future__ import annotations

from typing import Any

import Pyro5.server
from Pyro5 import core
from Pyro5.callcontext import current_context

from ..wire import pyro_compat


@Pyro5.server.expose
class HubDaemonObject(Pyro5.server.DaemonObject):
    """``Pyro.Daemon`` for a hub daemon: listings by who is asking."""

    def _caller(self) -> tuple[Any, Any, bool]:
        hub = self.daemon.hub
        session = hub.sessions.of(current_context.client)
        return hub, session, not hub.access.enabled or hub.access.role_now(session) == "admin"

    def registered(self) -> list[str]:
        """The object ids registered in this daemon: all of them for admins, otherwise the caller's own."""
        hub, session, admin = self._caller()
        if admin:
            ids = list(pyro_compat.registered_objects(self.daemon).keys())
        else:
            mine = {s.id for s in hub.sessions.all() if s.user == session.user}
            ids = [core.DAEMON_NAME, hub.settings.server.object_id, *hub.table.ids_owned_by(mine)]
        hub.access.audit.write("call", user=session.user, role=hub.access.role_now(session),
                               address=session.address, session=session.id, method="Pyro.Daemon.registered",
                               args="", outcome="ok" if admin else f"own objects only ({len(ids)})")
        return ids

    def info(self) -> str:
        """What this daemon is; the number of objects only for admins."""
        hub, session, admin = self._caller()
        hub.access.audit.write("call", user=session.user, role=hub.access.role_now(session),
                               address=session.address, session=session.id, method="Pyro.Daemon.info",
                               args="", outcome="ok" if admin else "without object counts")
        if admin:
            return str(super().info())
        return f"{core.DAEMON_NAME} bound on {self.daemon.locationStr} (taggerhub)"
