"""The ``taggerhub`` command: parse arguments, call the layer below, print the result."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .config import ConfigError, load_settings
from .errors import BackendUnavailable


def cmd_serve(args: argparse.Namespace) -> int:
    from .backend import load_backend
    from .logs import setup_logging
    from .server import serve

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


def cmd_status(args: argparse.Namespace) -> int:
    from Pyro5.errors import CommunicationError

    from .client import createProxy

    try:
        proxy = createProxy(host=args.host, port=args.port, token=args.token)
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


def cmd_exporter(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .exporter import parse_channels, run
    from .logs import setup_logging

    settings = load_settings(args.config, overrides={"exporter": {
        "listen": args.listen, "server": args.server, "token": args.token,
        "channels": parse_channels(args.channels) if args.channels is not None else None,
    }})
    setup_logging(args.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return run(settings.exporter, stop)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taggerhub", description=__doc__)
    parser.add_argument("--version", action="version", version=f"taggerhub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the Time Tagger (or the simulator) over the network")
    serve.add_argument("--host", default=None, help="address to listen on (default localhost)")
    serve.add_argument("--port", type=int, default=None, help="TCP port (default 23000)")
    serve.add_argument("--backend", choices=("simulator", "hardware"), default=None,
                       help="simulated Time Tagger (default) or the vendor library with a real device")
    serve.add_argument("--config", default=None, help="taggerhub TOML settings file")
    serve.add_argument("--sim-config", default=None, help="simulator lab file (devices and signals)")
    serve.add_argument("--clock", choices=("realtime", "virtual"), default=None,
                       help="simulator clock: wall clock (default) or as fast as possible")
    serve.add_argument("--insecure", action="store_true",
                       help="allow listening beyond loopback without authentication and TLS")
    serve.set_defaults(func=cmd_serve)

    status = sub.add_parser("status", help="check that a server answers; print backend, device, clients")
    status.add_argument("--host", default="localhost")
    status.add_argument("--port", type=int, default=23000)
    status.add_argument("--token", default=None, help="access token (default: $TAGGERHUB_TOKEN)")
    status.add_argument("--json", action="store_true", help="print machine-readable JSON")
    status.set_defaults(func=cmd_status)
    add_exporter_parser(sub)
    return parser


def add_exporter_parser(sub: argparse._SubParsersAction) -> None:
    exporter = sub.add_parser("exporter", help="serve Prometheus metrics of a taggerhub server and its tagger")
    exporter.add_argument("--listen", default=None, help="HOST:PORT for /metrics (default 0.0.0.0:9234)")
    exporter.add_argument("--server", default=None, help="taggerhub server HOST:PORT (default localhost:23000)")
    exporter.add_argument("--channels", default=None,
                          help="comma-separated channels to report count rates for (default: every input)")
    exporter.add_argument("--token", default=None, help="access token (default: $TAGGERHUB_EXPORTER_TOKEN)")
    exporter.add_argument("--config", default=None, help="taggerhub TOML settings file ([exporter] section)")
    exporter.add_argument("--log-level", default="INFO")
    exporter.set_defaults(func=cmd_exporter)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, BackendUnavailable, ValueError) as exc:
        print(f"taggerhub {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
