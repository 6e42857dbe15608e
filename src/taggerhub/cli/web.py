"""``taggerhub web``: serve the live lab page, a client of one taggerhub server (docs/web.md)."""

from __future__ import annotations

import argparse

from ..config import load_settings


def cmd_web(args: argparse.Namespace) -> int:
    try:
        from ..lab import web
    except ImportError as exc:  # starlette/uvicorn are the optional `web` extra
        raise LookupError(f"the web page needs the 'web' extra: pip install 'taggerhub[web]' ({exc})") from None
    from ..logs import setup_logging

    settings = load_settings(args.config, overrides={"web": {
        "listen": args.listen, "server": args.server, "tls_ca": args.tls_ca, "tls_cert": args.tls_cert,
        "tls_key": args.tls_key, "cert_file": args.cert, "key_file": args.key,
        "insecure": True if args.insecure else None, "update_hz": args.update_hz,
    }})
    setup_logging(args.log_level)
    return web.serve(settings.web)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``web`` subcommand."""
    web = sub.add_parser("web", help="serve a live lab page (count rates, histogram, settings, lease) in the browser")
    web.add_argument("--listen", default=None, help="HOST:PORT for the page (default localhost:8023)")
    web.add_argument("--server", default=None, help="taggerhub server HOST:PORT (default localhost:23000)")
    web.add_argument("--tls-ca", default=None, help="CA file: talk TLS to the server (needed when it has TLS on)")
    web.add_argument("--tls-cert", default=None,
                     help="client certificate: pages log in as its user without a token (your own PC only)")
    web.add_argument("--tls-key", default=None, help="key of the client certificate")
    web.add_argument("--cert", default=None, help="serve the page over HTTPS with this certificate")
    web.add_argument("--key", default=None, help="key of the HTTPS certificate")
    web.add_argument("--insecure", action="store_true",
                     help="allow serving beyond loopback without HTTPS (tokens would cross the network in clear)")
    web.add_argument("--update-hz", type=float, default=None, help="count-rate updates per second (default 10)")
    web.add_argument("--config", default=None, help="taggerhub TOML settings file ([web] section)")
    web.add_argument("--log-level", default="INFO", help="log level of the web process (default: %(default)s)")
    web.set_defaults(func=cmd_web)
