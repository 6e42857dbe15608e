"""The ``taggerhub`` command: assemble the top-level parser from one module per command group."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..config import ConfigError
from ..errors import BackendUnavailable
from . import certs, config, discovery, exporter, permissions, recordings, serve, sessions, status, users, vpn, web

DESCRIPTION = (
    "Serve a Swabian Instruments Time Tagger (or its simulator) to many users and programs over the "
    "network, watch it with Prometheus, and manage who may use it. Settings come from defaults, a TOML "
    "file (--config or $TAGGERHUB_CONFIG) and TAGGERHUB_<SECTION>_<FIELD> environment variables, each "
    "overriding the one before; 'taggerhub config --dump' shows the result."
)
EPILOG = "Run 'taggerhub COMMAND --help' for a command's options. Documentation: docs/ in the taggerhub repository."

# In the order `taggerhub --help` lists them: running, watching, access, remote access, discovery.
GROUPS = (serve, status, exporter, web, config, users, certs, sessions, recordings, permissions, vpn, discovery)

# What a command may raise for a mistake in its input: one line and exit 2, not a traceback.
USER_ERRORS = (ConfigError, BackendUnavailable, ValueError, PermissionError, LookupError)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: each group module adds its own subcommands."""
    parser = argparse.ArgumentParser(prog="taggerhub", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"taggerhub {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taggerhub`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        print(f"taggerhub {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
