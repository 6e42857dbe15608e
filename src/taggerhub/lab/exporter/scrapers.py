"""Who may scrape ``/metrics``: named scrapers with a generated secret, sent as bearer token or basic auth.

A scraper's credential is ``NAME.SECRET`` (the shape of taggerhub's own tokens). Prometheus
sends it as ``authorization: {credentials_file: ...}`` (``Bearer NAME.SECRET``) or as
``basic_auth: {username: NAME, password_file: ...}`` (password ``SECRET``). The exporter keeps
only ``NAME=sha256:HEX`` of the secret in ``[exporter] scrapers``: secrets are 256 random bits
made by :func:`new_scraper`, so a plain SHA-256 is enough (no password to stretch), and an
Ansible controller computes it with its stock ``hash('sha256')`` filter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from ...config import ConfigError

_SCHEME = "sha256:"
ANONYMOUS = ""  # the scraper's name when no scraper is configured (nothing to check)


@dataclass(frozen=True)
class Verdict:
    """The outcome for one request: allowed or not, and as which scraper."""

    allowed: bool
    scraper: str = ANONYMOUS


def secret_hash(secret: str) -> str:
    """What ``[exporter] scrapers`` stores for a secret."""
    return _SCHEME + hashlib.sha256(secret.encode()).hexdigest()


def new_scraper(name: str) -> tuple[str, str]:
    """A fresh credential for ``name``: (``NAME.SECRET`` for the scraper, ``NAME=sha256:HEX`` for the exporter)."""
    check_name(name, "scraper name")
    secret = secrets.token_urlsafe(32)
    return f"{name}.{secret}", f"{name}={secret_hash(secret)}"


def check_name(name: str, what: str) -> None:
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ConfigError(f"{what}: use letters, digits, '-' and '_' only, got {name!r}")


class ScraperAuth:
    """Checks a request's ``Authorization`` header against ``[exporter] scrapers`` entries."""

    def __init__(self, entries: list[str], show_users_to: list[str]):
        self._hashes: dict[str, bytes] = {}
        for entry in entries:
            name, sep, digest = entry.partition("=")
            name, digest = name.strip(), digest.strip()
            if not sep or not digest.startswith(_SCHEME):
                raise ConfigError(f"exporter.scrapers: expected NAME=sha256:HEX, got {entry!r}")
            check_name(name, "exporter.scrapers")
            try:
                raw = bytes.fromhex(digest[len(_SCHEME):])
            except ValueError:
                raise ConfigError(f"exporter.scrapers: {name}'s hash is not hexadecimal") from None
            if len(raw) != 32:
                raise ConfigError(f"exporter.scrapers: {name}'s hash must be 64 hex digits (SHA-256)")
            self._hashes[name] = raw
        self._show_users_to = set(show_users_to)

    @property
    def required(self) -> bool:
        """Scrapers are configured, so every request must name one."""
        return bool(self._hashes)

    def check(self, header: str | None) -> Verdict:
        """The verdict for an ``Authorization`` header value (None: the header was absent)."""
        if not self.required:
            return Verdict(True)
        name, secret = _credential(header or "")
        expected = self._hashes.get(name)
        given = hashlib.sha256(secret.encode()).digest()
        if expected is None:
            hmac.compare_digest(given, given)  # same work whether or not the name exists
            return Verdict(False)
        return Verdict(hmac.compare_digest(given, expected), name)

    def shows_users(self, verdict: Verdict) -> bool:
        """Whether this scraper may see user names and roles (``"*"``: every allowed scraper)."""
        return verdict.allowed and ("*" in self._show_users_to or
                                    (verdict.scraper != ANONYMOUS and verdict.scraper in self._show_users_to))


def _credential(header: str) -> tuple[str, str]:
    """(name, secret) from ``Bearer NAME.SECRET`` or ``Basic base64(NAME:SECRET)``; ("", "") if neither."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        name, sep, secret = value.partition(".")
        return (name, secret) if sep else ("", "")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        name, sep, secret = decoded.partition(":")
        return (name, secret) if sep else ("", "")
    return "", ""
