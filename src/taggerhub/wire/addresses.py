"""Network addresses as taggerhub writes and reads them: ``HOST:PORT``, the library's URI, a peer's text.

One parser and one formatter, so that the server's logs, the name-server option, the
exporter's options and the client agree on IPv6 brackets and on error messages.
"""

from __future__ import annotations

from typing import Any

# The id the served library is registered under: the vendor's TimeTaggerRPC client asks for it
# (config.ServerSettings.object_id has the same default; config cannot import wire).
LIBRARY_OBJECT_ID = "TimeTaggerRPC"


def parse_host_port(text: str, what: str = "address", *, default_host: str = "localhost",
                    default_port: int | None = None) -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``; errors name ``what`` (the option), as users see them.

    Accepted: ``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` (``default_host``). When there is a
    ``default_port``, ``HOST``, ``[V6]`` and a bare IPv6 address (several colons) take it;
    without one, a text with no colon is the port (``"9234"``). An empty text is
    ``default_host`` with ``default_port``.
    """
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{what} must be HOST:PORT (IPv6 as [addr]:port), got {text!r}")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    elif ":" in text or (text and default_port is not None):  # a bare IPv6 address, or a host alone
        host, port = text, None
    else:
        host, port = "", text or None
    host = host or default_host
    if port is None:
        if default_port is None:
            raise ValueError(f"{what} must be HOST:PORT, got {text!r}")
        return host, default_port
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"{what} must be HOST:PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"{what} port must be 0..65535, got {number}")
    return host, number


def format_host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets (what :func:`parse_host_port` and Pyro5 URIs read)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def library_uri(host: str, port: int, object_id: str = LIBRARY_OBJECT_ID) -> str:
    """The Pyro5 URI of the library served at host:port."""
    return f"PYRO:{object_id}@{format_host_port(host, port)}"


def peer_text(address: Any) -> str:
    """A socket address (``(host, port, ...)`` from accept/getpeername) as text for logs; "?" if none."""
    if isinstance(address, tuple) and len(address) >= 2:
        return format_host_port(str(address[0]), address[1])
    return "?" if address is None else str(address)


def peer_address(conn: Any) -> Any:
    """The peer's socket address of a Pyro5 connection (``conn.sock``), or None once it is gone."""
    try:
        return conn.sock.getpeername()
    except (OSError, AttributeError):
        return None
