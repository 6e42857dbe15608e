"""TLS contexts for the server and for clients, from the lab CA's files (see :mod:`taggerhub.access.certs`).

Pyro5 keeps one process-wide SSL configuration; taggerhub builds its own
contexts instead, so a client process can talk to several servers with
different CAs and client certificates, one per proxy.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from ..config import ConfigError, TlsSettings


def _need(path: str, what: str) -> str:
    if not path:
        raise ConfigError(f"tls: {what} is not set")
    if not Path(path).is_file():
        raise ConfigError(f"tls: {what} {path!r} does not exist")
    return path


def server_context(tls: TlsSettings) -> ssl.SSLContext:
    """Server side: our certificate; client certificates required, optional (with a CA) or ignored."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(_need(tls.cert_file, "tls.cert_file"), _need(tls.key_file, "tls.key_file"))
        if tls.ca_file:
            context.load_verify_locations(cafile=_need(tls.ca_file, "tls.ca_file"))
    except ssl.SSLError as exc:
        raise ConfigError(f"tls: cannot load certificate or key: {exc}") from None
    if tls.require_client_cert:
        if not tls.ca_file:
            raise ConfigError("tls.require_client_cert needs tls.ca_file (the CA that signs client certificates)")
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_OPTIONAL if tls.ca_file else ssl.CERT_NONE
    return context


def client_context(ca_file: str, cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """Client side: verify the server against ``ca_file``; present a client certificate if given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=_need(ca_file, "CA file"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        try:
            context.load_cert_chain(_need(cert_file, "client certificate"), key_file or None)
        except ssl.SSLError as exc:
            raise ConfigError(f"tls: cannot load client certificate {cert_file!r}: {exc}") from None
    return context
