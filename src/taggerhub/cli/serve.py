"""``taggerhub serve``: run the server in the foreground."""

from __future__ import annotations

import argparse

from ..config import load_settings
from ._options import DEFAULT_HOST, DEFAULT_PORT


def cmd_serve(args: argparse.Namespace) -> int:
    """Settings from file, environment and options; then serve until SIGTERM/SIGINT."""
    from ..backend.loader import load_backend
    from ..logs import setup_logging
    from ..server.app import serve

    overrides: dict[str, object] = {"host": args.host, "port": args.port, "backend": args.backend}
    if args.insecure:
        overrides["insecure"] = True
    settings = load_settings(args.config, overrides={
        "server": overrides,
        "simulator": {"config_file": args.sim_config, "clock": args.clock},
    })
    setup_logging(settings.server.log_level)
    backend = load_backend(settings.server.backend, settings.simulator)
    return serve(settings, backend, settings.server.backend)


def add_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="serve the Time Tagger (or the simulator) over the network",
                           description="Serve the Time Tagger (or the simulator) over the network until "
                                       "SIGTERM or Ctrl-C. Options override the settings file and environment.")
    serve.add_argument("--host", default=None,
                       help=f"address to listen on (default: [server] host, {DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=None, help=f"TCP port (default: [server] port, {DEFAULT_PORT})")
    serve.add_argument("--backend", choices=("simulator", "hardware"), default=None,
                       help="simulated Time Tagger or the vendor library with a real device "
                            "(default: [server] backend, simulator)")
    serve.add_argument("--config", default=None, metavar="FILE",
                       help="taggerhub TOML settings file (default: $TAGGERHUB_CONFIG, else none)")
    serve.add_argument("--sim-config", default=None, metavar="FILE",
                       help="simulator lab file: devices and signals (default: [simulator] config_file, "
                            "else the built-in lab)")
    serve.add_argument("--clock", choices=("realtime", "virtual"), default=None,
                       help="simulator clock: the wall clock or as fast as possible "
                            "(default: [simulator] clock, realtime)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow listening beyond loopback without authentication and TLS (default: refuse)")
    serve.set_defaults(func=cmd_serve)
