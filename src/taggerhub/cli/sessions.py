"""``taggerhub sessions``: who is connected, and ending a session (admin)."""

from __future__ import annotations

import argparse
import json
import time

from ._options import client_options, create_proxy


def cmd_sessions(args: argparse.Namespace) -> int:
    """List the sessions, or end one with ``--end``."""
    proxy = create_proxy(args)
    if args.end:
        closed = proxy.hub_end_session(args.end)
        print(f"session {args.end} ended ({closed} connections closed)")
        return 0
    rows = proxy.hub_sessions()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'session':8} {'user':16} {'role':9} {'address':22} {'since':20} {'calls':>7} {'owned':>5}  lease")
    for r in rows:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["since"]))
        mark = " (you)" if r.get("you") else ""
        print(f"{r['id']:8} {r['user']:16} {r['role']:9} {r['address']:22} {since:20} {r['calls']:>7} "
              f"{r['objects_owned']:>5}  {'yes' if r.get('lease') else ''}{mark}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    sessions = sub.add_parser("sessions", help="list connected clients; --end SESSION disconnects one (admin)",
                              description="List the clients connected to a server; --end SESSION disconnects "
                                          "one. Needs an admin token.")
    client_options(sessions)
    sessions.add_argument("--end", default=None, metavar="SESSION", help="end this session (default: only list)")
    sessions.add_argument("--json", action="store_true", help="print machine-readable JSON (default: a table)")
    sessions.set_defaults(func=cmd_sessions)
