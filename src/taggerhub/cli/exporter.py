"""``taggerhub exporter``: serve Prometheus metrics of a server and its taggers."""

from __future__ import annotations

import argparse

from ..config import ExporterSettings, load_settings
from ._options import config_option, log_level_option

_DEFAULTS = ExporterSettings()


def cmd_exporter(args: argparse.Namespace) -> int:
    """Serve /metrics until SIGTERM/SIGINT."""
    from ..lab.exporter import parse_channels, run
    from ..logs import setup_logging
    from ._signals import stop_on_signals

    settings = load_settings(args.config, overrides={"exporter": {
        "listen": args.listen, "server": args.server, "token": args.token,
        "tls_ca": args.tls_ca, "tls_cert": args.tls_cert, "tls_key": args.tls_key,
        "channels": parse_channels(args.channels) if args.channels is not None else None,
    }})
    setup_logging(args.log_level)
    return run(settings.exporter, stop_on_signals())


def add_parser(sub: argparse._SubParsersAction) -> None:
    exporter = sub.add_parser("exporter", help="serve Prometheus metrics of a taggerhub server and its tagger",
                              description="Serve Prometheus metrics of a taggerhub server and its taggers on "
                                          "/metrics. Options override the [exporter] settings.")
    exporter.add_argument("--listen", default=None, metavar="HOST:PORT",
                          help=f"where to serve /metrics (default: [exporter] listen, {_DEFAULTS.listen})")
    exporter.add_argument("--server", default=None, metavar="HOST:PORT",
                          help=f"taggerhub server to watch (default: [exporter] server, {_DEFAULTS.server})")
    exporter.add_argument("--channels", default=None,
                          help="comma-separated channels to report count rates for "
                               "(default: [exporter] channels, else every input)")
    exporter.add_argument("--token", default=None,
                          help="access token (default: [exporter] token, $TAGGERHUB_EXPORTER_TOKEN)")
    exporter.add_argument("--tls-ca", default=None,
                          help="CA file: connect to the server over TLS (default: [exporter] tls_ca, plain TCP)")
    exporter.add_argument("--tls-cert", default=None,
                          help="client certificate, if the server requires one (default: [exporter] tls_cert)")
    exporter.add_argument("--tls-key", default=None,
                          help="key of the client certificate (default: [exporter] tls_key)")
    config_option(exporter, "[exporter] section")
    log_level_option(exporter)
    exporter.set_defaults(func=cmd_exporter)
