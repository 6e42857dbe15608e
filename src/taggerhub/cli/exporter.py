"""``taggerhub exporter``: serve Prometheus metrics of a server and its taggers."""

from __future__ import annotations

import argparse

from ..config import ExporterSettings, load_settings
from ._options import config_option, log_level_option

_DEFAULTS = ExporterSettings()


def cmd_exporter(args: argparse.Namespace) -> int:
    """Serve /metrics until SIGTERM/SIGINT (or, with --new-scraper, print a scraper credential and exit)."""
    from ..lab.exporter import parse_channels, run
    from ..lab.exporter.scrapers import new_scraper
    from ..logs import setup_logging
    from ._signals import stop_on_signals

    if args.new_scraper is not None:
        token, entry = new_scraper(args.new_scraper)
        name, secret = token.split(".", 1)
        print(f"# scraper {name}, shown once. Give Prometheus one of:\n"
              f"#   authorization: {{credentials_file: FILE}}, FILE holding: {token}\n"
              f"#   basic_auth: {{username: {name}, password_file: FILE}}, FILE holding: {secret}\n"
              "# and add this entry to [exporter] scrapers in taggerhub.toml:")
        print(f'"{entry}"')
        return 0

    settings = load_settings(args.config, overrides={"exporter": {
        "listen": args.listen, "server": args.server, "token": args.token,
        "tls_ca": args.tls_ca, "tls_cert": args.tls_cert, "tls_key": args.tls_key,
        "cert_file": args.cert_file, "key_file": args.key_file,
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
    exporter.add_argument("--cert-file", default=None,
                          help="serve /metrics over HTTPS with this certificate (default: [exporter] cert_file)")
    exporter.add_argument("--key-file", default=None,
                          help="key of that certificate (default: [exporter] key_file)")
    exporter.add_argument("--new-scraper", default=None, metavar="NAME",
                          help="print a new credential for scraper NAME and its [exporter] scrapers entry, then exit")
    config_option(exporter, "[exporter] section")
    log_level_option(exporter)
    exporter.set_defaults(func=cmd_exporter)
