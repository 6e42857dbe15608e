"""``taggerhub status``: is the server up, and what does it serve (also the container health check)."""

from __future__ import annotations

import argparse
import json
import sys

from ._options import client_options, create_proxy


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 when the server answers, 1 with one line when it does not: health checks rely on it."""
    from Pyro5.errors import CommunicationError

    try:
        proxy = create_proxy(args)
        status = proxy.hub_status()
    except CommunicationError as exc:  # ServerUnavailable, or refused while fetching metadata
        print(f"taggerhub server at {args.host}:{args.port} is not reachable: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        devices = ", ".join(f"{d['serial']} ({d['model']})" for d in status["devices"]) or "none open"
        print(f"server    taggerhub {status['version']} at {args.host}:{args.port}")
        print(f"backend   {status['backend']} (library {status['backend_version']})")
        print(f"devices   {devices}")
        print(f"sessions  {status['sessions']}")
        print(f"objects   {status['objects']}")
        print(f"uptime    {status['uptime_s']:.0f} s")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser("status", help="check that a server answers; print backend, device, clients",
                            description="Check that a taggerhub server answers and print its backend, open "
                                        "devices and clients. Exit status 0 when it answers, 1 when not.")
    client_options(status)
    status.add_argument("--json", action="store_true", help="print machine-readable JSON (default: a table)")
    status.set_defaults(func=cmd_status)
