"""Exceptions that taggerhub raises on its own account (backend errors pass through unchanged)."""

from __future__ import annotations

from Pyro5.errors import CommunicationError


class TaggerhubError(Exception):
    """Base of taggerhub's own errors."""


class BackendUnavailable(TaggerhubError):
    """The requested backend (vendor library) cannot be loaded on this machine."""


class AccessDenied(TaggerhubError, PermissionError):
    """The caller's role, ownership or the control lease forbids this call."""


class ObjectGone(TaggerhubError, LookupError):
    """The remote object was freed, or the server restarted since the proxy was made."""


class VpnError(TaggerhubError, ValueError):
    """WireGuard configuration cannot be written or applied as asked."""


class ServerUnavailable(CommunicationError):
    """The server cannot be reached, or the connection to it was lost."""
