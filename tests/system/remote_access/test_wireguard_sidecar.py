"""The WireGuard sidecar for real: a client in its own network namespace, wireguard-go tunnels.

One lab per module: the sidecar container (``wireguard/``) with a config from
``taggerhub vpn``, the taggerhub server in the sidecar's network namespace (as
compose's ``network_mode: service:wireguard`` puts it), and a client namespace
joined to the sidecar by a veth pair, which stands for the internet.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from netlab import RPC_PORT, Container, NamespacedServer, Netns, build_image, link, require_netns, run, wait_for

from taggerhub.lab import vpn

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TUNNEL_SERVER = "10.213.0.1"
LINK_SERVER, LINK_CLIENT = "10.214.0.1", "10.214.0.2"

CONNECT = """
    import socket, sys
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
    except OSError as exc:
        print(f"failed: {exc}")
    else:
        print("connected")
"""


@dataclass
class VpnLab:
    uid: str
    root: Path
    sidecar: Container
    client: Netns
    server: NamespacedServer

    @property
    def config_dir(self) -> Path:
        return self.root / "config" / "wireguard"

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return run([sys.executable, "-m", "taggerhub", "vpn", *args, "--dir", str(self.config_dir)])

    def connect(self, host: str, timeout_s: float = 10.0) -> str:
        """Try a TCP connection to the RPC port from the client namespace: 'connected' or 'failed: ...'.

        Expected failures pass a short timeout; successes get room for a slow handshake under load.
        """
        out = run(self.client.cmd(sys.executable, "-c", textwrap.dedent(CONNECT), host, str(RPC_PORT),
                                  str(timeout_s)), timeout=timeout_s + 30)
        return out.stdout.strip()

    @contextlib.contextmanager
    def tunnel(self, conf: Path) -> Iterator[str]:
        """Bring a client config up with wg-quick in the client namespace, as a user would."""
        iface = conf.stem
        run(self.client.cmd("wg-quick", "up", str(conf)))
        try:
            yield iface
        finally:
            run(self.client.cmd("wg-quick", "down", str(conf)), check=False)


@pytest.fixture(scope="module")
def vpn_lab(tmp_path_factory) -> Iterator[VpnLab]:
    require_netns("wg", "wg-quick", "wireguard-go")
    image = build_image("wireguard", "acc-wireguard:test")
    uid = secrets.token_hex(3)
    root = tmp_path_factory.mktemp("vpn")
    with contextlib.ExitStack() as stack:
        conf_dir = root / "config" / "wireguard"
        run([sys.executable, "-m", "taggerhub", "vpn", "init", "--dir", str(conf_dir),
             "--address", f"{TUNNEL_SERVER}/24", "--endpoint", f"{LINK_SERVER}:51820"])
        run([sys.executable, "-m", "taggerhub", "vpn", "add-peer", f"acc{uid}a", "--dir", str(conf_dir)])
        sidecar = Container(f"acc-{uid}-wg", image, "--cap-add", "NET_ADMIN", "--device", "/dev/net/tun",
                            "-v", f"{root / 'config'}:/config:ro", "-e", "WG_SYNC_INTERVAL_S=1")
        stack.callback(sidecar.close)
        wait_for(lambda: sidecar.exec("wg", "show", "wg0", "listen-port", check=False).returncode == 0,
                 "sidecar interface wg0")
        client = Netns(f"acc-{uid}-c")
        stack.callback(client.close)
        link(sidecar, client, f"acc{uid}", "v", LINK_CLIENT, LINK_SERVER)
        server = NamespacedServer(sidecar, root / "server.log", "--host", TUNNEL_SERVER, "--insecure")
        stack.callback(server.close)
        yield VpnLab(uid, root, sidecar, client, server)


def test_sidecar_falls_back_to_wireguard_go_without_kernel_module(vpn_lab):
    logs = vpn_lab.sidecar.logs()
    if "kernel module)" in logs:
        pytest.skip("this host has the WireGuard kernel module")
    assert "wg0 up (wireguard-go" in logs
    assert "firewall on" in logs


def test_client_in_own_namespace_runs_countrate_through_the_tunnel(vpn_lab):
    conf = vpn_lab.config_dir / "peers" / f"acc{vpn_lab.uid}a.conf"
    with vpn_lab.tunnel(conf):
        # The vendor's client, unchanged: the server's URIs name its tunnel address.
        out = vpn_lab.client.python(f"""
            from TimeTaggerRPC import client
            TT = client.createProxy(host={TUNNEL_SERVER!r}, port={RPC_PORT})
            tagger = TT.createTimeTagger()
            tagger.setTestSignal([1], True)
            rate = TT.Countrate(tagger, [1])
            rate.startFor(int(2e11))
            assert rate.waitUntilFinished(10_000)
            print(tagger.getSerial(), rate.getData()[0])
            TT.freeTimeTagger(tagger)
        """)
    serial, value = out.stdout.split()
    assert serial.endswith("SIM")
    assert float(value) == pytest.approx(800e3, rel=0.02)
    assert '"client": "10.213.0.2:' in vpn_lab.server.log()


def test_same_client_without_the_tunnel_cannot_connect(vpn_lab):
    conf = vpn_lab.config_dir / "peers" / f"acc{vpn_lab.uid}a.conf"
    with vpn_lab.tunnel(conf):
        assert vpn_lab.connect(TUNNEL_SERVER) == "connected"
    # No tunnel: try the tunnel address through the plain link, and the sidecar's own address.
    run(vpn_lab.client.cmd("ip", "route", "add", "10.213.0.0/24", "via", LINK_SERVER))
    try:
        assert vpn_lab.connect(TUNNEL_SERVER, timeout_s=3).startswith("failed")
        assert vpn_lab.connect(LINK_SERVER, timeout_s=3).startswith("failed")
    finally:
        run(vpn_lab.client.cmd("ip", "route", "del", "10.213.0.0/24"), check=False)


def test_peer_with_unknown_key_gets_nothing(vpn_lab):
    known = (vpn_lab.config_dir / "peers" / f"acc{vpn_lab.uid}a.conf").read_text()
    stranger = vpn.generate_keypair()
    lines = [f"PrivateKey = {stranger.private}" if line.startswith("PrivateKey") else
             f"PresharedKey = {vpn.generate_preshared_key()}" if line.startswith("PresharedKey") else line
             for line in known.splitlines()]
    conf = vpn_lab.root / f"acc{vpn_lab.uid}x.conf"
    conf.write_text("\n".join(lines) + "\n")
    conf.chmod(0o600)
    with vpn_lab.tunnel(conf) as iface:
        assert vpn_lab.connect(TUNNEL_SERVER, timeout_s=4).startswith("failed")
        handshakes = run(vpn_lab.client.cmd("wg", "show", iface, "latest-handshakes")).stdout.split()
        transfer = run(vpn_lab.client.cmd("wg", "show", iface, "transfer")).stdout.split()
    assert handshakes[1] == "0"  # never completed a handshake
    assert transfer[1] == "0"  # not one byte came back
    assert int(transfer[2]) > 0  # though it tried
    peers = run(["docker", "exec", vpn_lab.sidecar.name, "wg", "show", "wg0", "peers"]).stdout.split()
    assert stranger.public not in peers


def test_add_peer_reaches_running_tunnel_without_restarting_it(vpn_lab):
    alice = vpn_lab.config_dir / "peers" / f"acc{vpn_lab.uid}a.conf"
    ifindex = vpn_lab.sidecar.exec("cat", "/sys/class/net/wg0/ifindex").stdout
    with vpn_lab.tunnel(alice):
        # Alice holds a connection open across the change.
        holder = subprocess.Popen(vpn_lab.client.cmd(sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from taggerhub import client
            TT = client.createProxy(host={TUNNEL_SERVER!r}, port={RPC_PORT})
            tagger = TT.createTimeTagger()
            print(tagger.getSerial(), flush=True)
            sys.stdin.readline()
            print(tagger.getSerial(), flush=True)
        """)), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = holder.stdout.readline().strip()
            assert first.endswith("SIM"), holder.stderr.read() if holder.poll() is not None else first
            added = vpn_lab.cli("add-peer", f"acc{vpn_lab.uid}b")
            assert "[Interface]" in added.stdout and "sidecar applies" in added.stderr
            bob_key = vpn.public_key(next(line.split(" = ", 1)[1] for line in added.stdout.splitlines()
                                          if line.startswith("PrivateKey")))
            wait_for(lambda: bob_key in vpn_lab.sidecar.exec("wg", "show", "wg0", "peers").stdout,
                     "the sidecar to apply the new peer", timeout_s=15)
            out, err = holder.communicate("\n", timeout=30)
            assert out.split() == [first], err
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
    assert vpn_lab.sidecar.exec("cat", "/sys/class/net/wg0/ifindex").stdout == ifindex
    with vpn_lab.tunnel(vpn_lab.config_dir / "peers" / f"acc{vpn_lab.uid}b.conf"):
        assert vpn_lab.connect(TUNNEL_SERVER) == "connected"
    assert "applied changed" in vpn_lab.sidecar.logs()


def test_removed_peer_is_cut_off_without_restarting_the_tunnel(vpn_lab):
    name = f"acc{vpn_lab.uid}r"
    vpn_lab.cli("add-peer", name)
    conf = vpn_lab.root / f"{name}.conf"  # the peer keeps its copy; the server forgets it
    conf.write_text((vpn_lab.config_dir / "peers" / f"{name}.conf").read_text())
    conf.chmod(0o600)
    key = vpn.public_key(next(line.split(" = ", 1)[1] for line in conf.read_text().splitlines()
                              if line.startswith("PrivateKey")))
    wait_for(lambda: key in vpn_lab.sidecar.exec("wg", "show", "wg0", "peers").stdout, "the new peer", 15)
    ifindex = vpn_lab.sidecar.exec("cat", "/sys/class/net/wg0/ifindex").stdout
    with vpn_lab.tunnel(conf):
        assert vpn_lab.connect(TUNNEL_SERVER) == "connected"
        vpn_lab.cli("remove-peer", name)
        wait_for(lambda: key not in vpn_lab.sidecar.exec("wg", "show", "wg0", "peers").stdout, "the removal", 15)
        assert vpn_lab.connect(TUNNEL_SERVER, timeout_s=3).startswith("failed")
    assert vpn_lab.sidecar.exec("cat", "/sys/class/net/wg0/ifindex").stdout == ifindex
