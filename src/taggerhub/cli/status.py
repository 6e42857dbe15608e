"""``taggerhub status``: is the server up, and what does it serve (also the container health check)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._options import client_options, create_proxy


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 when the server answers, 1 with one line when it does not: health checks rely on it."""
    from Pyro5.errors import CommunicationError

    try:
        proxy = create_proxy(args)
        status = proxy.hub_status()
    except CommunicationError as exc:  # ServerUnavailable, or refused while fetching metadata
        text = str(exc)  # the client's errors name the server, the cause and the fix (client/explain.py)
        if not text.startswith("taggerhub server at"):
            text = f"taggerhub server at {args.host}:{args.port} is not reachable: {text}"
        print(f"taggerhub status: {text}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2) if args.json else format_status(status, args.host, args.port))
    return 0


def format_status(status: dict[str, Any], host: str, port: int) -> str:
    """The table for people; the simulator's version is the library version it imitates, so say so."""
    devices = ", ".join(f"{d['serial']} ({d['model']})" for d in status["devices"]) or "none open"
    library = ("simulates library" if status["backend"] == "simulator" else "library") + f" {status['backend_version']}"
    return "\n".join((
        f"server    taggerhub {status['version']} at {host}:{port}",
        f"backend   {status['backend']} ({library})",
        f"devices   {devices}",
        f"sessions  {status['sessions']}",
        f"objects   {status['objects']}",
        f"uptime    {status['uptime_s']:.0f} s",
    ))


def add_parser(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser("status", help="check that a server answers; print backend, device, clients",
                            description="Check that a taggerhub server answers and print its backend, open "
                                        "devices and clients. Exit status 0 when it answers, 1 when not.")
    client_options(status)
    status.add_argument("--json", action="store_true", help="print machine-readable JSON (default: a table)")
    status.set_defaults(func=cmd_status)
