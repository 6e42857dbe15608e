"""The ``taggerhub`` command: parse arguments, call the layer below, print the result."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .. import __version__
from ..config import ConfigError, load_settings
from ..errors import BackendUnavailable


def cmd_serve(args: argparse.Namespace) -> int:
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


def cmd_status(args: argparse.Namespace) -> int:
    from Pyro5.errors import CommunicationError

    from ..client.proxy import createProxy

    try:
        proxy = createProxy(host=args.host, port=args.port, token=args.token, tls_ca=args.tls_ca,
                            tls_cert=args.tls_cert, tls_key=args.tls_key)
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

    from ..lab.exporter import parse_channels, run
    from ..logs import setup_logging

    settings = load_settings(args.config, overrides={"exporter": {
        "listen": args.listen, "server": args.server, "token": args.token,
        "tls_ca": args.tls_ca, "tls_cert": args.tls_cert, "tls_key": args.tls_key,
        "channels": parse_channels(args.channels) if args.channels is not None else None,
    }})
    setup_logging(args.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return run(settings.exporter, stop)


def cmd_vpn(args: argparse.Namespace) -> int:
    from ..lab import vpn

    settings = load_settings(args.config, overrides={"vpn": {
        "dir": args.dir, "interface": args.interface, "endpoint": getattr(args, "endpoint", None),
        "address": getattr(args, "address", None), "listen_port": getattr(args, "listen_port", None),
    }})
    vpn_dir = vpn.VpnDir(settings.vpn)
    if args.vpn_command == "init":
        server = vpn_dir.init(force=args.force)
        print(f"wrote {vpn_dir.server_conf} (0600): address {server.address}, port {server.listen_port}, "
              f"public key {server.public_key}", file=sys.stderr)
        return 0
    if args.vpn_command == "remove-peer":
        server, peer = vpn.remove_peer(vpn_dir, args.name)
        print(f"peer {peer.name} ({peer.address}) removed from {vpn_dir.server_conf}", file=sys.stderr)
        text = ""
    else:
        server, peer, text, path = vpn_dir.add_peer(args.name)
        print(f"peer {peer.name}: address {peer.address}, config written to {path} (0600)", file=sys.stderr)
    applied = not args.no_apply and vpn.apply_to_running(settings.vpn.interface, server)
    print(f"interface {settings.vpn.interface} updated without restart" if applied else
          f"interface {settings.vpn.interface} does not run here; the WireGuard sidecar applies "
          f"{vpn_dir.server_conf.name} by itself within seconds", file=sys.stderr)
    print(text, end="")
    return 0


def add_vpn_parser(sub: argparse._SubParsersAction) -> None:
    """`taggerhub vpn init|add-peer|remove-peer`: WireGuard keys and configs for remote access."""
    vpn = sub.add_parser("vpn", help="WireGuard keys and configs for remote access (see docs/remote-access.md)")
    vpn_sub = vpn.add_subparsers(dest="vpn_command", required=True)
    for name, help_text in (("init", "write the server key pair and WireGuard config"),
                            ("add-peer", "add a peer: allocate an address, write and print its client config, "
                                         "update a running interface without restarting it"),
                            ("remove-peer", "cut a peer off: drop it from the server config and a running interface")):
        p = vpn_sub.add_parser(name, help=help_text)
        p.add_argument("--config", default=None, help="taggerhub TOML settings file ([vpn] section)")
        p.add_argument("--dir", default=None, help="directory for the configs (default: [vpn] dir, ./wireguard)")
        p.add_argument("--interface", default=None, help="WireGuard interface name (default wg0)")
        if name != "remove-peer":
            p.add_argument("--endpoint", default=None, help="HOST:PORT that peers dial (public address of the server)")
        if name == "init":
            p.add_argument("--address", default=None, help="server tunnel address with prefix (default 10.13.13.1/24)")
            p.add_argument("--listen-port", type=int, default=None,
                           help="UDP port WireGuard listens on (default 51820)")
            p.add_argument("--force", action="store_true", help="start over: new server key, forget all peers")
        else:
            p.add_argument("name", help="peer name, also its wg-quick interface name (max 15 characters)")
            p.add_argument("--no-apply", action="store_true", help="only write files; do not touch a running interface")
        p.set_defaults(func=cmd_vpn)


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
    status.add_argument("--tls-ca", default=None,
                        help="lab CA to verify the server (default: $TAGGERHUB_CLIENT_TLS_CA)")
    status.add_argument("--tls-cert", default=None, help="client certificate for mutual TLS")
    status.add_argument("--tls-key", default=None, help="key of the client certificate")
    status.set_defaults(func=cmd_status)
    add_exporter_parser(sub)

    from .access import add_parsers as add_access_parsers

    add_access_parsers(sub)
    add_vpn_parser(sub)
    from .discovery import add_parsers as add_discovery_parsers

    add_discovery_parsers(sub)
    __import__("taggerhub.cli.web", fromlist=["add_parser"]).add_parser(sub)
    return parser


def add_exporter_parser(sub: argparse._SubParsersAction) -> None:
    exporter = sub.add_parser("exporter", help="serve Prometheus metrics of a taggerhub server and its tagger")
    exporter.add_argument("--listen", default=None, help="HOST:PORT for /metrics (default 0.0.0.0:9234)")
    exporter.add_argument("--server", default=None, help="taggerhub server HOST:PORT (default localhost:23000)")
    exporter.add_argument("--channels", default=None,
                          help="comma-separated channels to report count rates for (default: every input)")
    exporter.add_argument("--token", default=None, help="access token (default: $TAGGERHUB_EXPORTER_TOKEN)")
    exporter.add_argument("--tls-ca", default=None, help="CA file: connect to the server over TLS")
    exporter.add_argument("--tls-cert", default=None, help="client certificate, if the server requires one")
    exporter.add_argument("--tls-key", default=None, help="key of the client certificate")
    exporter.add_argument("--config", default=None, help="taggerhub TOML settings file ([exporter] section)")
    exporter.add_argument("--log-level", default="INFO")
    exporter.set_defaults(func=cmd_exporter)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, BackendUnavailable, ValueError, PermissionError, LookupError) as exc:
        print(f"taggerhub {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
