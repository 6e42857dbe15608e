"""Exceptions that taggerhub raises on its own account (backend errors pass through unchanged)."""

from __future__ import annotations

import enum

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


class RefusalReason(enum.StrEnum):
    """Why a connection was refused before any object was reachable: a small, fixed set of metric labels."""

    no_token = "no_token"  # auth on and neither a token nor a client certificate
    bad_token = "bad_token"  # unknown, removed or rotated token
    unknown_user = "unknown_user"  # a certificate for a user not in the users file
    cert_mismatch = "cert_mismatch"  # certificate and token name different users
    user_connections = "user_connections"  # the user's connection limit is reached
    busy = "busy"  # no free worker
    throttled = "throttled"  # the user made too many denied calls lately
    crowded = "crowded"  # too many connections still in their handshake: the oldest was dropped
    tls = "tls"  # the TLS handshake failed
    handshake_timeout = "handshake_timeout"  # TLS plus Pyro5 handshake took longer than allowed
    protocol = "protocol"  # not a Pyro5 handshake
