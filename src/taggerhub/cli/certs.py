"""``taggerhub certs``: a lab CA, server and client certificates for TLS."""

from __future__ import annotations

import argparse

CLIENT_DAYS = 825  # what browsers and most TLS stacks still accept for a leaf certificate


def cmd_certs(args: argparse.Namespace) -> int:
    """Make the files and print their paths, one a line."""
    from ..access import certs

    if args.action == "init":
        made = certs.init(args.dir, args.host, args.client)
    else:
        made = list(certs.issue(args.dir, args.name, args.name, client=True, days=args.days))
    for path in made:
        print(path)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    certs = sub.add_parser("certs", help="make a lab CA, server and client certificates for TLS",
                           description="Make a lab CA, server and client certificates for TLS.")
    cert_actions = certs.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = cert_actions.add_parser("init", help="make the CA and the server certificate in DIR")
    init.add_argument("dir", help="directory for the CA, server certificate and keys")
    init.add_argument("--host", action="append", default=[], required=True,
                      help="host name or IP address clients use for the server (repeat)")
    init.add_argument("--client", action="append", default=[], metavar="USER",
                      help="also make a client certificate for USER (repeat; default: none)")
    client = cert_actions.add_parser("client", help="make a client certificate for USER (mutual TLS)")
    client.add_argument("dir", help="directory holding the lab CA (from 'certs init')")
    client.add_argument("name", help="user name, written into the certificate")
    client.add_argument("--days", type=int, default=CLIENT_DAYS,
                        help="how long the certificate is valid, in days (default: %(default)s)")
    certs.set_defaults(func=cmd_certs)
