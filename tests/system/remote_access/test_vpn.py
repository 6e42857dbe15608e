"""`taggerhub vpn`: WireGuard keys, server and client configs, and live updates of a running interface."""

from __future__ import annotations

import logging
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from netlab import Netns, require_netns, run

from taggerhub.config import VpnSettings
from taggerhub.errors import VpnError
from taggerhub.lab import vpn


def taggerhub(*args: str, env: dict[str, str] | None = None, ns: Netns | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "taggerhub", *args]
    return subprocess.run(ns.cmd(*cmd) if ns else cmd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def fields(text: str) -> dict[str, str]:
    """Key = value pairs of a wg config with one peer (later sections win)."""
    return dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line and not line.startswith("#"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def vpn_dir(tmp_path) -> vpn.VpnDir:
    return vpn.VpnDir(VpnSettings(dir=str(tmp_path / "wireguard"), endpoint="vpn.lab.example:51820"))


# -- keys -----------------------------------------------------------------------------
@pytest.mark.needs("wg")
def test_generated_keys_match_what_wg_pubkey_derives():
    for _ in range(3):
        keys = vpn.generate_keypair()
        derived = subprocess.run(["wg", "pubkey"], input=keys.private, capture_output=True, text=True, check=True)
        assert derived.stdout.strip() == keys.public


def test_private_keys_are_clamped_like_wg_genkey():
    import base64

    for _ in range(20):
        raw = base64.b64decode(vpn.generate_keypair().private)
        assert len(raw) == 32 and raw[0] & 7 == 0 and raw[31] & 128 == 0 and raw[31] & 64


def test_key_pair_repr_hides_the_private_key():
    keys = vpn.generate_keypair()
    assert keys.private not in repr(keys) and keys.public in repr(keys)


@pytest.mark.parametrize("text", ["", "not base64!", "AAAA", "A" * 44])
def test_public_key_rejects_what_is_not_a_key(text):
    with pytest.raises(VpnError, match="not a WireGuard key"):
        vpn.public_key(text)


# -- files ----------------------------------------------------------------------------
def test_init_writes_a_server_config_only_its_owner_can_read(vpn_dir):
    old = os.umask(0)
    try:
        server = vpn_dir.init()
    finally:
        os.umask(old)
    assert mode(vpn_dir.server_conf) == 0o600 and mode(vpn_dir.root) == 0o700
    written = fields(vpn_dir.server_conf.read_text())
    assert written["Address"] == "10.13.13.1/24" and written["ListenPort"] == "51820"
    assert vpn.public_key(written["PrivateKey"]) == server.public_key
    assert vpn_dir.load().endpoint == "vpn.lab.example:51820"


def test_init_refuses_to_replace_the_server_key_without_force(vpn_dir):
    first = vpn_dir.init()
    vpn_dir.add_peer("alice")
    with pytest.raises(VpnError, match="--force"):
        vpn_dir.init()
    assert vpn_dir.load().public_key == first.public_key
    again = vpn_dir.init(force=True)
    assert again.public_key != first.public_key
    assert vpn_dir.load().peers == [] and not (vpn_dir.peers_dir / "alice.conf").exists()


def test_add_peer_allocates_the_next_free_address_and_writes_its_client_config(vpn_dir):
    server = vpn_dir.init()
    _, alice, _, _ = vpn_dir.add_peer("alice")
    _, bob, text, path = vpn_dir.add_peer("bob", endpoint="203.0.113.9:443")
    assert (str(alice.address), str(bob.address)) == ("10.13.13.2", "10.13.13.3")
    assert path == vpn_dir.peers_dir / "bob.conf" and path.read_text() == text
    assert mode(path) == 0o600 and mode(vpn_dir.peers_dir) == 0o700 and mode(vpn_dir.server_conf) == 0o600
    client = fields(text)
    assert vpn.public_key(client["PrivateKey"]) == bob.public_key
    assert client["PublicKey"] == server.public_key
    assert client["Address"] == "10.13.13.3/32" and client["AllowedIPs"] == "10.13.13.1/32"
    assert client["Endpoint"] == "203.0.113.9:443" and client["PersistentKeepalive"] == "25"
    reloaded = vpn_dir.load()
    assert [p.name for p in reloaded.peers] == ["alice", "bob"]
    assert reloaded.peer("bob").preshared_key == client["PresharedKey"]
    assert reloaded.peer("bob").public_key == bob.public_key


@pytest.mark.parametrize("name", ["", "a b", "x" * 16, "../evil", "-dash", "semi;colon"])
def test_add_peer_rejects_names_that_are_not_interface_names(vpn_dir, name):
    vpn_dir.init()
    with pytest.raises(VpnError, match="peer name"):
        vpn_dir.add_peer(name)


def test_add_peer_rejects_a_name_in_use(vpn_dir):
    vpn_dir.init()
    vpn_dir.add_peer("alice")
    with pytest.raises(VpnError, match="'alice' exists"):
        vpn_dir.add_peer("alice")


def test_add_peer_needs_init_and_an_endpoint(tmp_path):
    bare = vpn.VpnDir(VpnSettings(dir=str(tmp_path / "wg")))
    with pytest.raises(VpnError, match="vpn init"):
        bare.add_peer("alice")
    bare.init()
    with pytest.raises(VpnError, match="no endpoint"):
        bare.add_peer("alice")
    with pytest.raises(VpnError, match="HOST:PORT"):
        bare.add_peer("alice", endpoint="no-port")


def test_remove_peer_forgets_it_and_frees_its_address(vpn_dir):
    vpn_dir.init()
    vpn_dir.add_peer("alice")
    vpn_dir.add_peer("bob")
    server, gone = vpn.remove_peer(vpn_dir, "alice")
    assert [p.name for p in vpn_dir.load().peers] == ["bob"] == [p.name for p in server.peers]
    assert gone.public_key not in vpn_dir.server_conf.read_text()
    assert not (vpn_dir.peers_dir / "alice.conf").exists() and (vpn_dir.peers_dir / "bob.conf").exists()
    _, carol, _, _ = vpn_dir.add_peer("carol")
    assert carol.address == gone.address
    with pytest.raises(VpnError, match=r"no peer 'alice' .* \(peers: bob, carol\)"):
        vpn.remove_peer(vpn_dir, "alice")


def test_settings_added_by_hand_survive_add_peer(vpn_dir):
    vpn_dir.init()
    vpn_dir.add_peer("alice")
    text = vpn_dir.server_conf.read_text()
    text = text.replace("ListenPort = 51820", "ListenPort = 51820\nPostUp = logger wg0 up\nMTU = 1380")
    text = text.replace("AllowedIPs = 10.13.13.2/32", "AllowedIPs = 10.13.13.2/32, 192.168.50.0/24\n"
                                                      "PersistentKeepalive = 15")
    vpn_dir.server_conf.write_text(text)
    server, _, _, _ = vpn_dir.add_peer("bob")
    after = vpn_dir.server_conf.read_text()
    for kept in ("PostUp = logger wg0 up", "MTU = 1380", "AllowedIPs = 10.13.13.2/32, 192.168.50.0/24",
                 "PersistentKeepalive = 15", "AllowedIPs = 10.13.13.3/32"):
        assert kept in after
    wg_only = server.render(wg_only=True)
    keys = {line.split("=", 1)[0].strip() for line in wg_only.splitlines() if "=" in line}
    assert keys.isdisjoint({"PostUp", "MTU", "Address"}), keys  # by key: a random base64 key may spell "MTU"
    assert "PersistentKeepalive = 15" in wg_only


def test_a_hand_broken_server_config_is_named_in_the_error(vpn_dir):
    vpn_dir.init()
    vpn_dir.server_conf.write_text(vpn_dir.server_conf.read_text().replace("ListenPort = 51820\n", ""))
    with pytest.raises(VpnError, match=r"wg0\.conf: a section lacks ListenPort"):
        vpn_dir.add_peer("alice")


def test_a_full_address_pool_is_a_clear_error(tmp_path):
    small = vpn.VpnDir(VpnSettings(dir=str(tmp_path / "wg"), address="10.9.9.1/30", endpoint="h:1"))
    small.init()
    small.add_peer("only")
    with pytest.raises(VpnError, match=r"no free address left in 10\.9\.9\.0/30"):
        small.add_peer("another")


def test_private_keys_never_reach_the_log(vpn_dir, caplog):
    caplog.set_level(logging.DEBUG)
    server = vpn_dir.init()
    _, _, text, _ = vpn_dir.add_peer("alice")
    secrets_ = [server.private_key, fields(text)["PrivateKey"], fields(text)["PresharedKey"]]
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "vpn peer added" in logged and server.public_key in logged
    assert not [s for s in secrets_ if s in logged]


# -- command line ---------------------------------------------------------------------
def test_cli_prints_the_client_config_and_keeps_the_server_key_to_itself(tmp_path):
    d = str(tmp_path / "wg")
    init = taggerhub("vpn", "init", "--dir", d, "--address", "10.20.0.1/24")
    assert init.returncode == 0, init.stderr
    added = taggerhub("vpn", "add-peer", "carol", "--dir", d, "--no-apply",
                      env={"TAGGERHUB_VPN_ENDPOINT": "vpn.example.org:51820"})
    assert added.returncode == 0, added.stderr
    assert added.stdout == (tmp_path / "wg" / "peers" / "carol.conf").read_text()
    assert fields(added.stdout)["Endpoint"] == "vpn.example.org:51820"
    server_private = fields((tmp_path / "wg" / "wg0.conf").read_text())["PrivateKey"]
    assert server_private not in added.stdout + added.stderr + init.stdout + init.stderr
    assert fields(added.stdout)["PrivateKey"] not in added.stderr


def test_cli_bad_input_exits_2_naming_the_problem(tmp_path):
    missing = taggerhub("vpn", "add-peer", "dave", "--dir", str(tmp_path / "none"))
    assert missing.returncode == 2 and "run `taggerhub vpn init` first" in missing.stderr
    bad = taggerhub("vpn", "init", "--dir", str(tmp_path / "wg"), "--address", "10.0.0.300/24")
    assert bad.returncode == 2 and "vpn.address" in bad.stderr


def test_concurrent_add_peer_runs_get_distinct_addresses(tmp_path):
    d = str(tmp_path / "wg")
    assert taggerhub("vpn", "init", "--dir", d, "--endpoint", "h:51820").returncode == 0
    procs = [subprocess.Popen([sys.executable, "-m", "taggerhub", "vpn", "add-peer", f"p{i}", "--dir", d,
                               "--no-apply"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(6)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    peers = vpn.VpnDir(VpnSettings(dir=d)).load().peers
    assert sorted(p.name for p in peers) == [f"p{i}" for i in range(6)]
    assert len({p.address for p in peers}) == 6
    assert sorted(fields(out)["Address"] for out, _ in outs) == sorted(f"{p.address}/32" for p in peers)


# -- a running interface ----------------------------------------------------------------
def test_add_peer_updates_a_running_interface_without_restarting_it(tmp_path):
    require_netns("wg", "wg-quick", "wireguard-go")
    uid = secrets.token_hex(3)
    iface = f"acc{uid}s"
    d = str(tmp_path / "wg")
    ns = Netns(f"acc-{uid}-v")
    try:
        assert taggerhub("vpn", "init", "--dir", d, "--interface", iface, "--address", "10.216.0.1/24",
                         "--endpoint", "10.217.0.1:51820").returncode == 0
        assert taggerhub("vpn", "add-peer", "alice", "--dir", d, "--interface", iface).returncode == 0
        conf = Path(d) / f"{iface}.conf"
        run(ns.cmd("wg-quick", "up", str(conf)))  # the host-side setup, without a container
        ifindex = run(ns.cmd("cat", f"/sys/class/net/{iface}/ifindex")).stdout
        port = run(ns.cmd("wg", "show", iface, "listen-port")).stdout

        added = taggerhub("vpn", "add-peer", "bob", "--dir", d, "--interface", iface, ns=ns)
        assert added.returncode == 0, added.stderr
        assert f"interface {iface} updated without restart" in added.stderr
        bob = vpn.public_key(fields(added.stdout)["PrivateKey"])
        allowed = dict(line.split("\t") for line in run(ns.cmd("wg", "show", iface, "allowed-ips")).stdout.splitlines())
        assert allowed[bob] == "10.216.0.3/32" and len(allowed) == 2
        assert run(ns.cmd("cat", f"/sys/class/net/{iface}/ifindex")).stdout == ifindex
        assert run(ns.cmd("wg", "show", iface, "listen-port")).stdout == port

        removed = taggerhub("vpn", "remove-peer", "alice", "--dir", d, "--interface", iface, ns=ns)
        assert removed.returncode == 0 and "updated without restart" in removed.stderr, removed.stderr
        assert run(ns.cmd("wg", "show", iface, "peers")).stdout.split() == [bob]
        assert run(ns.cmd("cat", f"/sys/class/net/{iface}/ifindex")).stdout == ifindex

        # Starting over (new server key, peers forgotten) reaches the running interface too.
        fresh = taggerhub("vpn", "init", "--dir", d, "--interface", iface, "--force",
                          "--address", "10.216.0.1/24", "--endpoint", "10.217.0.1:51820")
        assert fresh.returncode == 0, fresh.stderr
        carol = taggerhub("vpn", "add-peer", "carol", "--dir", d, "--interface", iface, ns=ns)
        assert carol.returncode == 0, carol.stderr
        assert run(ns.cmd("wg", "show", iface, "public-key")).stdout.strip() == fields(carol.stdout)["PublicKey"]
        assert run(ns.cmd("wg", "show", iface, "peers")).stdout.split() == [
            vpn.public_key(fields(carol.stdout)["PrivateKey"])]
    finally:
        run(ns.cmd("wg-quick", "down", str(Path(d) / f"{iface}.conf")), check=False)
        ns.close()
