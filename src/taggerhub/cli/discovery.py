"""``taggerhub nameserver`` and ``taggerhub ls``: the lab's Pyro5 name server and what it knows."""

from __future__ import annotations

import argparse
import json
import sys

import Pyro5.errors

from ..config import load_settings
from ._options import config_option, log_level_option


def cmd_nameserver(args: argparse.Namespace) -> int:
    """Run Pyro5's own name server in the foreground until SIGTERM/SIGINT (for systemd, compose)."""
    from Pyro5 import config as pyro_config
    from Pyro5.nameserver import start_ns_loop

    from ..logs import setup_logging
    from ._signals import stop_on_signals

    settings = load_settings(args.config)
    setup_logging(args.log_level)
    stop = stop_on_signals()
    pyro_config.POLLTIMEOUT = 0.5  # how soon the loop notices a stop
    start_ns_loop(host=args.host or settings.discovery.ns_host, port=args.port or settings.discovery.ns_port,
                  enableBroadcast=args.broadcast, storage=args.storage, loopCondition=lambda: not stop.is_set())
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    """List every tagger registered in the name server, with its server's answer."""
    from ..client.env import ns_address
    from ..lab.listing import format_table, listing
    from ..wire.naming import parse_ns_address

    settings = load_settings(args.config)
    host, port = parse_ns_address(ns_address(args.ns)
                                  or f"{settings.discovery.ns_host}:{settings.discovery.ns_port}")
    try:
        rows = listing(host, port, token=args.token, tls_ca=args.tls_ca,
                       stale_after_s=settings.discovery.stale_after_s, prune=args.prune)
    except Pyro5.errors.NamingError as exc:
        print(f"taggerhub ls: no name server at {host}:{port}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print(format_table(rows))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The discovery subcommands (docs/discovery.md)."""
    ns = sub.add_parser("nameserver", help="run the lab's Pyro5 name server (where servers register taggers)")
    ns.add_argument("--host", default=None, help="address to listen on (default: [discovery] ns_host, localhost)")
    ns.add_argument("--port", type=int, default=None, help="TCP port (default: [discovery] ns_port, 9090)")
    ns.add_argument("--storage", default=None,
                    help="Pyro5 NS storage, e.g. sql:/var/lib/taggerhub/ns.sqlite (default: memory)")
    ns.add_argument("--broadcast", action="store_true",
                    help="also answer UDP broadcast lookups on port 9091 (default: off)")
    config_option(ns, "[discovery] section")
    log_level_option(ns)
    ns.set_defaults(func=cmd_nameserver)

    ls = sub.add_parser("ls", help="list every tagger in the lab (through the name server)")
    ls.add_argument("--ns", default=None,
                    help="name server HOST:PORT (default: $TAGGERHUB_NS, else [discovery] ns_host:ns_port)")
    ls.add_argument("--token", default=None, help="access token for the servers (default: $TAGGERHUB_TOKEN)")
    ls.add_argument("--tls-ca", default=None, help="lab CA for servers with TLS (default: $TAGGERHUB_CLIENT_TLS_CA)")
    ls.add_argument("--prune", action="store_true",
                    help="first remove entries their server has not renewed for [discovery] stale_after_s "
                         "(default: keep them)")
    ls.add_argument("--json", action="store_true", help="print machine-readable JSON (default: a table)")
    config_option(ls, "[discovery] section")
    ls.set_defaults(func=cmd_ls)
