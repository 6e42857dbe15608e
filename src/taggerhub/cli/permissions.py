"""``taggerhub permissions``: the permission table, as the server applies it."""

from __future__ import annotations

import argparse

from ..config import load_settings
from ._options import config_option


def cmd_permissions(args: argparse.Namespace) -> int:
    """Print the Markdown table for the configured backend (the server's own calls come from access.surface)."""
    from ..access.rules import markdown
    from ..backend.adapter import BackendApi
    from ..backend.loader import load_backend

    settings = load_settings(args.config, overrides={"server": {"backend": args.backend}})
    api = BackendApi(load_backend(settings.server.backend, settings.simulator))
    print(markdown(api), end="")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    perms = sub.add_parser("permissions", help="print the permission table (Markdown) for a backend",
                           description="Print which role may make which call, as a Markdown table.")
    config_option(perms, "for [server] backend")
    perms.add_argument("--backend", choices=("simulator", "hardware"), default=None,
                       help="whose calls to list (default: [server] backend, simulator)")
    perms.set_defaults(func=cmd_permissions)
