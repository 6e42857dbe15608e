"""Options shared by several command groups, so their help text and defaults read the same everywhere."""

from __future__ import annotations

import argparse

from ..config import load_settings

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 23000
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Bind addresses that mean "every interface": a client on the same PC dials localhost instead.
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def config_option(parser: argparse.ArgumentParser, section: str) -> None:
    """``--config FILE``: the same wording for every command that reads the settings file."""
    parser.add_argument("--config", default=None, metavar="FILE",
                        help=f"taggerhub TOML settings file, {section} (default: $TAGGERHUB_CONFIG, else none)")


def log_level_option(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` for the long-running commands."""
    parser.add_argument("--log-level", default="INFO", choices=LEVELS, type=str.upper,
                        help="how much to log (default: %(default)s)")


def client_options(parser: argparse.ArgumentParser) -> None:
    """Where the server is and how to authenticate: for the commands that talk to a running server."""
    parser.add_argument("--host", default=None,
                        help=f"server address (default: [server] host of --config, else {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=None,
                        help=f"server TCP port (default: [server] port of --config, else {DEFAULT_PORT})")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="the server's TOML settings file: dial its [server] host and port, and trust its "
                             "[tls] ca_file when TLS is on (default: none)")
    parser.add_argument("--token", default=None, help="access token (default: $TAGGERHUB_TOKEN)")
    parser.add_argument("--tls-ca", default=None,
                        help="lab CA to verify the server (default: $TAGGERHUB_CLIENT_TLS_CA)")
    parser.add_argument("--tls-cert", default=None,
                        help="client certificate for mutual TLS (default: $TAGGERHUB_CLIENT_TLS_CERT)")
    parser.add_argument("--tls-key", default=None,
                        help="key of the client certificate (default: $TAGGERHUB_CLIENT_TLS_KEY)")


def resolve_target(args: argparse.Namespace) -> None:
    """Fill ``args.host``/``port``/``tls_ca`` left unset: from ``--config`` when given, else the defaults.

    Without ``--config`` nothing is read (not even ``$TAGGERHUB_CONFIG``), so the
    container's health check dials exactly what its command line says.
    """
    if args.config:
        settings = load_settings(args.config)
        host = settings.server.host
        args.host = args.host or (DEFAULT_HOST if host in WILDCARD_HOSTS else host)
        args.port = settings.server.port if args.port is None else args.port
        if args.tls_ca is None and settings.tls.enabled and settings.tls.ca_file:
            args.tls_ca = settings.tls.ca_file
    args.host = args.host or DEFAULT_HOST
    args.port = DEFAULT_PORT if args.port is None else args.port


def create_proxy(args: argparse.Namespace):
    """A library proxy to the server the options name."""
    from ..client.proxy import createProxy

    resolve_target(args)
    return createProxy(host=args.host, port=args.port, token=args.token, tls_ca=args.tls_ca,
                       tls_cert=args.tls_cert, tls_key=args.tls_key)
