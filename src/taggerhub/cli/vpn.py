"""``taggerhub vpn init|add-peer|remove-peer``: WireGuard keys and configs for remote access."""

from __future__ import annotations

import argparse
import sys

from ..config import VpnSettings, load_settings
from ._options import config_option

_DEFAULTS = VpnSettings()


def cmd_vpn(args: argparse.Namespace) -> int:
    """Write the configs, then update a running interface when there is one here."""
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    vpn = sub.add_parser("vpn", help="WireGuard keys and configs for remote access (see docs/remote-access.md)",
                         description="WireGuard keys and configs for remote access (see docs/remote-access.md).")
    vpn_sub = vpn.add_subparsers(dest="vpn_command", required=True, metavar="ACTION")
    for name, help_text in (("init", "write the server key pair and WireGuard config"),
                            ("add-peer", "add a peer: allocate an address, write and print its client config, "
                                         "update a running interface without restarting it"),
                            ("remove-peer", "cut a peer off: drop it from the server config and a running interface")):
        p = vpn_sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        config_option(p, "[vpn] section")
        p.add_argument("--dir", default=None,
                       help=f"directory for the configs (default: [vpn] dir, ./{_DEFAULTS.dir})")
        p.add_argument("--interface", default=None,
                       help=f"WireGuard interface name (default: [vpn] interface, {_DEFAULTS.interface})")
        if name != "remove-peer":
            p.add_argument("--endpoint", default=None, metavar="HOST:PORT",
                           help="address peers dial, the server's public one (default: [vpn] endpoint)")
        if name == "init":
            p.add_argument("--address", default=None,
                           help=f"server tunnel address with prefix (default: [vpn] address, {_DEFAULTS.address})")
            p.add_argument("--listen-port", type=int, default=None,
                           help=f"UDP port WireGuard listens on (default: [vpn] listen_port, {_DEFAULTS.listen_port})")
            p.add_argument("--force", action="store_true",
                           help="start over: new server key, forget all peers (default: keep them)")
        else:
            p.add_argument("name", help="peer name, also its wg-quick interface name (max 15 characters)")
            p.add_argument("--no-apply", action="store_true",
                           help="only write files; do not touch a running interface (default: apply)")
        p.set_defaults(func=cmd_vpn)
