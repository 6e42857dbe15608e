"""The client's environment variables, read here and nowhere else in the library.

``createProxy()`` is public API that scripts rely on without arguments, so the client keeps
reading, for each argument left at None:

- ``TAGGERHUB_TOKEN``: the token (``token``);
- ``TAGGERHUB_CLIENT_TLS_CA`` / ``_CERT`` / ``_KEY``: TLS files (``tls_ca``, ``tls_cert``, ``tls_key``);
- ``TAGGERHUB_NS``: the name server's ``HOST:PORT`` (``ns_host``, when connecting by ``name``);
- ``TAGGERHUB_RECORDINGS_CACHE``: where server recordings replayed by name are downloaded
  (default ``$XDG_CACHE_HOME/taggerhub/recordings``, else ``~/.cache/taggerhub/recordings``).

The layers below (``wire.naming``, ``access.tls``) take these values as parameters. Server
processes read their settings through :func:`taggerhub.config.load_settings` instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

TOKEN_ENV = "TAGGERHUB_TOKEN"
TLS_CA_ENV = "TAGGERHUB_CLIENT_TLS_CA"
TLS_CERT_ENV = "TAGGERHUB_CLIENT_TLS_CERT"
TLS_KEY_ENV = "TAGGERHUB_CLIENT_TLS_KEY"
NS_ENV = "TAGGERHUB_NS"
RECORDINGS_CACHE_ENV = "TAGGERHUB_RECORDINGS_CACHE"


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def token(given: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The token given, else ``$TAGGERHUB_TOKEN``; None when neither says one (an empty one is none)."""
    return given if given is not None else _environ(environ).get(TOKEN_ENV) or None


def tls_files(ca: str | None, cert: str | None, key: str | None,
              environ: Mapping[str, str] | None = None) -> tuple[str, str, str]:
    """CA, client certificate and key files: each given one, else its variable, else ""."""
    env = _environ(environ)
    return (ca if ca is not None else env.get(TLS_CA_ENV, ""),
            cert if cert is not None else env.get(TLS_CERT_ENV, ""),
            key if key is not None else env.get(TLS_KEY_ENV, ""))


def ns_address(given: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The name server's ``HOST[:PORT]`` given, else ``$TAGGERHUB_NS``, else None (localhost:9090)."""
    return given or _environ(environ).get(NS_ENV) or None


def recordings_cache(environ: Mapping[str, str] | None = None) -> Path:
    """The folder server recordings are downloaded into before a local replay (the XDG cache convention)."""
    env = _environ(environ)
    if env.get(RECORDINGS_CACHE_ENV):
        return Path(env[RECORDINGS_CACHE_ENV])
    cache = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return cache / "taggerhub" / "recordings"
