"""``taggerhub permissions``: the permission table, as the server applies it."""

from __future__ import annotations

import argparse

from ..config import LimitsSettings, load_settings
from ._options import config_option


def cmd_permissions(args: argparse.Namespace) -> int:
    """Print the Markdown tables: calls by role (the server's own from access.surface), then the limits."""
    settings = load_settings(args.config, overrides={"server": {"backend": args.backend}})
    if args.only in (None, "calls"):
        from ..access.rules import markdown
        from ..backend.adapter import BackendApi
        from ..backend.loader import load_backend

        api = BackendApi(load_backend(settings.server.backend, settings.simulator))
        print(markdown(api), end="")
    if args.only is None:
        print()
    if args.only in (None, "limits"):
        print(limits_markdown(settings.limits), end="")
    return 0


def limits_markdown(limits: LimitsSettings) -> str:
    """The [limits] in effect (0: no limit) with each role's and user's own value, as a Markdown table."""
    from ..access.quotas import Quotas

    lines = ["| limit | default | per role / user |", "|---|---:|---|"]
    for row in Quotas(limits).describe():
        overrides = ", ".join(f"{who}={value}" for who, value in row["overrides"].items())
        lines.append(f"| `{row['limit']}` | {row['default']} | {overrides} |")
    return "\n".join(lines) + "\n"


def add_parser(sub: argparse._SubParsersAction) -> None:
    perms = sub.add_parser("permissions", help="print the permission table and the limits (Markdown)",
                           description="Print which role may make which call, then the [limits] in effect "
                                       "with each role's and user's own, as Markdown tables.")
    config_option(perms, "for [server] backend")
    perms.add_argument("--backend", choices=("simulator", "hardware"), default=None,
                       help="whose calls to list (default: [server] backend, simulator)")
    perms.add_argument("--only", choices=("calls", "limits"), default=None,
                       help="print one of the two tables (default: both)")
    perms.set_defaults(func=cmd_permissions)
