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
    print(f"{'session':8} {'user':16} {'role':9} {'address':22} {'since':20} {'calls':>7} {'denied':>6} "
          f"{'owned':>5} {'user objects':>14} {'user memory':>21} {'measurements':>12}  lease")
    for r in rows:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["since"]))
        mark = " (you)" if r.get("you") else ""
        usage = r.get("usage", {})
        objects = _of(usage.get("objects", 0), usage.get("max_objects", 0), str)
        memory = _of(usage.get("measurement_bytes", 0), usage.get("max_measurement_bytes", 0), _size)
        measurements = _of(usage.get("measurements", 0), usage.get("max_measurements", 0), str)
        print(f"{r['id']:8} {r['user']:16} {r['role']:9} {r['address']:22} {since:20} {r['calls']:>7} "
              f"{r.get('denied', 0):>6} {r['objects_owned']:>5} {objects:>14} {memory:>21} {measurements:>12}  "
              f"{'yes' if r.get('lease') else ''}{mark}")
    if rows and "usage" in rows[0]:
        u = rows[0]["usage"]
        print(f"server: measurements hold {_of(u['server_measurement_bytes'], u['memory_budget_bytes'], _size)} "
              "(limits.memory_budget_bytes); user columns: the session's user across all its sessions")
    return 0


def _of(used: int, limit: int, show) -> str:
    """``12/1000``, or ``12/-`` when there is no limit (0)."""
    return f"{show(used)}/{show(limit) if limit else '-'}"


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f}{unit}" if unit == "B" else f"{nbytes:.1f}{unit}"
        nbytes /= 1024
    return str(nbytes)


def add_parser(sub: argparse._SubParsersAction) -> None:
    sessions = sub.add_parser("sessions", help="list connected clients; --end SESSION disconnects one (admin)",
                              description="List the clients connected to a server; --end SESSION disconnects "
                                          "one. Needs an admin token.")
    client_options(sessions)
    sessions.add_argument("--end", default=None, metavar="SESSION", help="end this session (default: only list)")
    sessions.add_argument("--json", action="store_true", help="print machine-readable JSON (default: a table)")
    sessions.set_defaults(func=cmd_sessions)
