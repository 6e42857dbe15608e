"""WireGuard key material and configuration for reaching taggerhub through a tunnel.

The tunnel itself runs in the WireGuard sidecar (``wireguard/``) or under
``wg-quick`` on the host; this module only writes what it reads. One file is
the source of truth: the server's wg-quick config ``<dir>/<interface>.conf``,
whose ``[Peer]`` sections carry a ``# Name = ...`` comment. Each peer's client
config goes to ``<dir>/peers/<name>.conf``. Keys are X25519 keys made with
``cryptography`` (WireGuard keys are base64 of the raw 32 bytes); files holding
private keys are written 0600 and no key ever reaches a log.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import ipaddress
import logging
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..config import VpnSettings
from ..errors import VpnError

log = logging.getLogger("taggerhub.vpn")

KEY_BYTES = 32
# wg-quick takes the interface name from the file name, so a peer's name must be a valid one.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
HEADER = "# Written by `taggerhub vpn`; add peers with `taggerhub vpn add-peer NAME`.\n"
# Keys that wg-quick understands but `wg syncconf` does not.
WG_QUICK_ONLY = {"Address", "DNS", "MTU", "Table", "PreUp", "PostUp", "PreDown", "PostDown", "SaveConfig"}


# -- keys -----------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyPair:
    """A WireGuard key pair, both halves base64 as ``wg`` prints them."""

    private: str = field(repr=False)
    public: str


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _decode_key(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != KEY_BYTES:
        raise VpnError(f"{what} is not a WireGuard key (base64 of 32 bytes)")
    return raw


def public_key(private: str) -> str:
    """Return the public key of a base64 private key, as ``wg pubkey`` does."""
    raw = _decode_key(private, "private key")
    return _b64(X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes_raw())


def generate_keypair() -> KeyPair:
    """Make a fresh key pair; the private key is clamped like ``wg genkey``'s."""
    raw = bytearray(X25519PrivateKey.generate().private_bytes_raw())
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    private = _b64(bytes(raw))
    return KeyPair(private=private, public=public_key(private))


def generate_preshared_key() -> str:
    """Make a symmetric key mixed into each peer's handshake (defence against future quantum attacks)."""
    return _b64(secrets.token_bytes(KEY_BYTES))


# -- configuration model ---------------------------------------------------------------
@dataclass
class Peer:
    name: str
    public_key: str
    preshared_key: str = field(repr=False)
    address: ipaddress.IPv4Address
    allowed_ips: str = ""  # as written, when an admin widened it; else the address /32
    extra: dict[str, str] = field(default_factory=dict)  # other keys an admin added, kept as they are


@dataclass
class ServerConfig:
    """The server side of the tunnel: its interface and every peer allowed in."""

    private_key: str = field(repr=False)
    address: ipaddress.IPv4Interface
    listen_port: int
    endpoint: str = ""
    peers: list[Peer] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)  # e.g. PostUp, MTU, FwMark added by hand

    @property
    def public_key(self) -> str:
        return public_key(self.private_key)

    def render(self, wg_only: bool = False) -> str:
        """Return the wg-quick config, or with ``wg_only`` what ``wg syncconf`` accepts."""
        lines = [] if wg_only else [HEADER.rstrip("\n")]
        lines.append("[Interface]")
        if not wg_only:
            if self.endpoint:
                lines.append(f"# Endpoint = {self.endpoint}")
            lines.append(f"Address = {self.address.with_prefixlen}")
        lines += [f"ListenPort = {self.listen_port}", f"PrivateKey = {self.private_key}"]
        lines += [f"{k} = {v}" for k, v in self.extra.items() if not (wg_only and k in WG_QUICK_ONLY)]
        for peer in self.peers:
            lines += ["", "[Peer]"]
            if not wg_only:
                lines.append(f"# Name = {peer.name}")
            lines.append(f"PublicKey = {peer.public_key}")
            if peer.preshared_key:
                lines.append(f"PresharedKey = {peer.preshared_key}")
            lines.append(f"AllowedIPs = {peer.allowed_ips or f'{peer.address}/32'}")
            lines += [f"{k} = {v}" for k, v in peer.extra.items()]
        return "\n".join(lines) + "\n"

    def peer(self, name: str) -> Peer | None:
        return next((p for p in self.peers if p.name == name), None)

    def next_address(self) -> ipaddress.IPv4Address:
        used = {self.address.ip, *(p.address for p in self.peers)}
        for host in self.address.network.hosts():
            if host not in used:
                return host
        raise VpnError(f"no free address left in {self.address.network} ({len(self.peers)} peers)")


def parse_server_config(text: str, where: str) -> ServerConfig:
    """Read a server config written by :meth:`ServerConfig.render` (comments carry names)."""
    sections: list[tuple[str, dict[str, str]]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        meta = re.match(r"^#\s*(Name|Endpoint)\s*=\s*(\S+)\s*$", line)
        if not line or (line.startswith("#") and not meta):
            continue
        if line in ("[Interface]", "[Peer]"):
            sections.append((line, {}))
            continue
        if not sections:
            raise VpnError(f"{where}:{number}: expected [Interface] before {line!r}")
        key, sep, value = (meta.group(1), "=", meta.group(2)) if meta else line.partition("=")
        if not sep:
            raise VpnError(f"{where}:{number}: expected 'Key = value', got {line!r}")
        sections[-1][1][key.strip()] = value.strip()
    interfaces = [values for kind, values in sections if kind == "[Interface]"]
    if len(interfaces) != 1:
        raise VpnError(f"{where}: expected exactly one [Interface] section, found {len(interfaces)}")
    iface = interfaces[0]
    try:
        server = ServerConfig(
            private_key=iface.pop("PrivateKey"),
            address=ipaddress.IPv4Interface(iface.pop("Address")),
            listen_port=int(iface.pop("ListenPort")),
            endpoint=iface.pop("Endpoint", ""),
            extra=iface,
        )
        public_key(server.private_key)
        for kind, values in sections:
            if kind != "[Peer]":
                continue
            allowed_ips = values.pop("AllowedIPs")
            first = ipaddress.IPv4Network(allowed_ips.split(",")[0].strip())
            server.peers.append(Peer(
                name=values.pop("Name", first.network_address.exploded),
                public_key=values.pop("PublicKey"),
                preshared_key=values.pop("PresharedKey", ""),
                address=first.network_address,
                allowed_ips="" if allowed_ips == f"{first.network_address}/32" else allowed_ips,
                extra=values,
            ))
    except KeyError as exc:
        raise VpnError(f"{where}: a section lacks {exc.args[0]}") from None
    except ValueError as exc:
        raise VpnError(f"{where}: {exc}") from None
    return server


def client_config(server: ServerConfig, peer: Peer, private_key: str, endpoint: str, keepalive_s: int) -> str:
    """Return the wg-quick config a peer brings its tunnel up with."""
    lines = [
        f"# taggerhub VPN peer {peer.name!r}: `wg-quick up ./{peer.name}.conf`, then connect to "
        f"{server.address.ip}:<RPC port>.",
        "[Interface]",
        f"PrivateKey = {private_key}",
        f"Address = {peer.address}/32",
        "",
        "[Peer]",
        f"PublicKey = {server.public_key}",
        f"PresharedKey = {peer.preshared_key}",
        f"Endpoint = {endpoint}",
        f"AllowedIPs = {server.address.ip}/32",
    ]
    if keepalive_s > 0:
        lines.append(f"PersistentKeepalive = {keepalive_s}")
    return "\n".join(lines) + "\n"


# -- files -----------------------------------------------------------------------------
def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file only its owner can read."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _check_endpoint(endpoint: str) -> None:
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise VpnError(f"endpoint must be HOST:PORT (IPv6 as [addr]:port), got {endpoint!r}")


class VpnDir:
    """The directory with the server config and the peers' client configs."""

    def __init__(self, settings: VpnSettings):
        if not re.match(r"^[A-Za-z0-9_=+.-]{1,15}$", settings.interface):
            raise VpnError(f"vpn.interface must be a valid interface name, got {settings.interface!r}")
        self.settings = settings
        self.root = Path(settings.dir)
        self.server_conf = self.root / f"{settings.interface}.conf"
        self.peers_dir = self.root / "peers"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise writers, so that two add-peer runs never hand out one address twice."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self) -> ServerConfig:
        try:
            text = self.server_conf.read_text()
        except FileNotFoundError:
            raise VpnError(f"no server config at {self.server_conf}; run `taggerhub vpn init` first") from None
        return parse_server_config(text, str(self.server_conf))

    def init(self, endpoint: str = "", force: bool = False) -> ServerConfig:
        """Write a fresh server key pair and config; refuse to replace one unless ``force``."""
        settings = self.settings
        try:
            address = ipaddress.IPv4Interface(settings.address)
        except ValueError as exc:
            raise VpnError(f"vpn.address must be an IPv4 address with prefix, e.g. 10.13.13.1/24: {exc}") from None
        if address.network.prefixlen > 30 or address.ip in (address.network.network_address,
                                                             address.network.broadcast_address):
            raise VpnError(f"vpn.address {address} leaves no room for peers; use e.g. 10.13.13.1/24")
        if not 0 < settings.listen_port < 65536:
            raise VpnError(f"vpn.listen_port must be 1..65535, got {settings.listen_port}")
        endpoint = endpoint or settings.endpoint
        if endpoint:
            _check_endpoint(endpoint)
        with self.locked():
            if self.server_conf.exists() and not force:
                raise VpnError(f"{self.server_conf} exists; pass --force to start over "
                               "(new server key, all peers forgotten)")
            # A new server key invalidates every client config, so starting over forgets the peers.
            for old in self.peers_dir.glob("*.conf") if self.peers_dir.is_dir() else ():
                old.unlink()
            server = ServerConfig(private_key=generate_keypair().private, address=address,
                                  listen_port=settings.listen_port, endpoint=endpoint)
            _write_private(self.server_conf, server.render())
        log.info("vpn server config written", extra={
            "path": str(self.server_conf), "public_key": server.public_key, "address": str(address),
        })
        return server

    def add_peer(self, name: str, endpoint: str = "") -> tuple[ServerConfig, Peer, str, Path]:
        """Allocate an address and keys for ``name``; return the updated server and the client config."""
        if not NAME_RE.match(name):
            raise VpnError(f"peer name must be 1-15 letters, digits, '.', '_' or '-' (a wg-quick "
                           f"interface name), got {name!r}")
        with self.locked():
            server = self.load()
            if server.peer(name) is not None:
                raise VpnError(f"peer {name!r} exists (address {server.peer(name).address})")  # type: ignore[union-attr]
            endpoint = endpoint or server.endpoint or self.settings.endpoint
            if not endpoint:
                raise VpnError("no endpoint known for peers to dial: pass --endpoint HOST:PORT (or give it to "
                               "`vpn init`, or set [vpn] endpoint / TAGGERHUB_VPN_ENDPOINT)")
            _check_endpoint(endpoint)
            keys = generate_keypair()
            peer = Peer(name=name, public_key=keys.public, preshared_key=generate_preshared_key(),
                        address=server.next_address())
            server.peers.append(peer)
            text = client_config(server, peer, keys.private, endpoint, self.settings.keepalive_s)
            self.peers_dir.mkdir(mode=0o700, exist_ok=True)
            path = self.peers_dir / f"{name}.conf"
            _write_private(path, text)
            _write_private(self.server_conf, server.render())
        log.info("vpn peer added", extra={"peer": name, "address": str(peer.address), "public_key": peer.public_key})
        return server, peer, text, path


def remove_peer(vpn_dir: VpnDir, name: str) -> tuple[ServerConfig, Peer]:
    """Drop ``name`` from the server config and delete its client config; return what is left."""
    with vpn_dir.locked():
        server = vpn_dir.load()
        peer = server.peer(name)
        if peer is None:
            known = ", ".join(p.name for p in server.peers) or "none"
            raise VpnError(f"no peer {name!r} in {vpn_dir.server_conf} (peers: {known})")
        server.peers.remove(peer)
        _write_private(vpn_dir.server_conf, server.render())
        (vpn_dir.peers_dir / f"{name}.conf").unlink(missing_ok=True)
    log.info("vpn peer removed", extra={"peer": name, "address": str(peer.address), "public_key": peer.public_key})
    return server, peer


def apply_to_running(interface: str, server: ServerConfig) -> bool:
    """Bring a running interface in line with ``server`` without restarting it (``wg syncconf``).

    The interface always follows the file, as the sidecar's does (after ``init
    --force`` that includes the new server key). Return False when no such
    interface runs here (e.g. the sidecar runs it; it picks up the changed file
    by itself). Keys go through stdin, never argv.
    """
    wg = shutil.which("wg")
    if wg is None:
        return False
    shown = subprocess.run([wg, "show", interface, "public-key"], capture_output=True, text=True, timeout=10)
    if shown.returncode != 0:
        return False
    done = subprocess.run([wg, "syncconf", interface, "/dev/stdin"], input=server.render(wg_only=True),
                          capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise VpnError(f"wg syncconf {interface} failed: {done.stderr.strip()}")
    log.info("vpn interface updated", extra={"interface": interface, "peers": len(server.peers)})
    return True
