"""compose.vpn.yaml and compose.ssh.yaml on top of compose.yaml: the whole stack, as a lab runs it.

A client namespace is joined to the host by a veth pair; the sidecars publish
their one port on the host's end of it. Needs the container work's Dockerfile
and compose.yaml beside these overlays.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from netlab import REPO, Netns, base_image, build_image, require_docker, require_netns, run

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# The host end of the client's link is a real host address: random, so parallel runs do not clash.
_NET = secrets.randbelow(250) + 2
HOST_END, CLIENT_END = f"10.219.{_NET}.1", f"10.219.{_NET}.2"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def taggerhub_image() -> str:
    require_docker()
    require_netns("wg-quick", "ssh")
    cmd = ["docker", "build", "-q", "-t", "acc-taggerhub:test", "--build-arg", f"BASE_IMAGE={base_image()}"]
    if Path("/etc/ssl/certs/ca-certificates.crt").is_file():
        cmd += ["--secret", "id=ca,src=/etc/ssl/certs/ca-certificates.crt"]
    run([*cmd, str(REPO)], timeout=900, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    return "acc-taggerhub:test"


@contextlib.contextmanager
def client_on_host_link(uid: str) -> Iterator[Netns]:
    """A client namespace whose only link ends on the host at HOST_END."""
    ns = Netns(f"acc-{uid}-h")
    host_side = f"acc{uid}h"
    try:
        run(["ip", "link", "add", host_side, "type", "veth", "peer", "name", f"acc{uid}c", "netns", ns.name])
        run(["ip", "addr", "add", f"{HOST_END}/24", "dev", host_side])
        run(["ip", "link", "set", host_side, "up"])
        run(ns.cmd("ip", "addr", "add", f"{CLIENT_END}/24", "dev", f"acc{uid}c"))
        run(ns.cmd("ip", "link", "set", f"acc{uid}c", "up"))
        yield ns
    finally:
        ns.close()
        run(["ip", "link", "del", host_side], check=False)


@contextlib.contextmanager
def compose(project: str, overlay: str, profile: str, env: dict[str, str], tmp: Path) -> Iterator[list[str]]:
    env_file = tmp / f"{project}.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    cmd = ["docker", "compose", "-p", project, "--env-file", str(env_file), "-f", str(REPO / "compose.yaml"),
           "-f", str(REPO / overlay), "--profile", profile]
    try:
        run([*cmd, "up", "-d", "--wait", "--wait-timeout", "120", "--no-build", "--pull", "never"], timeout=240)
        yield cmd
    finally:
        run([*cmd, "down", "-v", "--timeout", "20"], check=False, timeout=120)


def container_ip(name: str) -> str:
    return run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name]
               ).stdout.strip()


def reachable(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(3)
        return s.connect_ex((host, port)) == 0


def config_dir(tmp: Path) -> Path:
    cfg = tmp / "config"
    cfg.mkdir()
    if (REPO / "deploy" / "config" / "taggerhub.toml").exists():
        (cfg / "taggerhub.toml").write_text((REPO / "deploy" / "config" / "taggerhub.toml").read_text())
    return cfg


def test_vpn_profile_serves_rpc_and_metrics_only_through_the_tunnel(taggerhub_image, tmp_path):
    uid = secrets.token_hex(3)
    cfg = config_dir(tmp_path)
    udp = free_port(socket.SOCK_DGRAM)
    taggerhub = [sys.executable, "-m", "taggerhub", "vpn"]
    run([*taggerhub, "init", "--dir", str(cfg / "wireguard"), "--endpoint", f"{HOST_END}:{udp}"])
    run([*taggerhub, "add-peer", f"acc{uid}p", "--dir", str(cfg / "wireguard")])
    env = {"TAGGERHUB_IMAGE": taggerhub_image,
           "TAGGERHUB_WIREGUARD_IMAGE": build_image("wireguard", "acc-wireguard:test"),
           "TAGGERHUB_CONFIG_DIR": str(cfg), "TAGGERHUB_VPN_BIND": HOST_END, "TAGGERHUB_VPN_PORT": str(udp)}
    with client_on_host_link(uid) as client, compose(f"acc-{uid}-vpn", "compose.vpn.yaml", "vpn", env, tmp_path):
        conf = cfg / "wireguard" / "peers" / f"acc{uid}p.conf"
        run(client.cmd("wg-quick", "up", str(conf)))
        try:
            out = client.python("""
                import urllib.request
                from TimeTaggerRPC import client
                TT = client.createProxy(host='10.13.13.1', port=23000)
                tagger = TT.createTimeTagger()
                tagger.setTestSignal([1], True)
                rate = TT.Countrate(tagger, [1])
                rate.startFor(int(2e11)); rate.waitUntilFinished(10_000)
                print(rate.getData()[0])
                page = urllib.request.urlopen('http://10.13.13.1:9234/metrics', timeout=10).read().decode()
                print('taggerhub_up 1.0' in page)
            """)
        finally:
            run(client.cmd("wg-quick", "down", str(conf)), check=False)
        value, metrics = out.stdout.split()
        assert float(value) == pytest.approx(800e3, rel=0.02) and metrics == "True"
        sidecar = container_ip(f"acc-{uid}-vpn-wireguard-1")
        assert not reachable(sidecar, 23000) and not reachable(sidecar, 9234)


def test_ssh_profile_forwards_to_a_loopback_only_server(taggerhub_image, tmp_path):
    uid = secrets.token_hex(3)
    cfg = config_dir(tmp_path)
    (cfg / "ssh").mkdir()
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")])
    (cfg / "ssh" / "authorized_keys").write_text((tmp_path / "id.pub").read_text())
    port = free_port()
    env = {"TAGGERHUB_IMAGE": taggerhub_image, "TAGGERHUB_SSHD_IMAGE": build_image("sshd", "acc-sshd:test"),
           "TAGGERHUB_CONFIG_DIR": str(cfg), "TAGGERHUB_SSH_BIND": HOST_END, "TAGGERHUB_SSH_PORT": str(port)}
    with client_on_host_link(uid) as client, compose(f"acc-{uid}-ssh", "compose.ssh.yaml", "ssh", env, tmp_path):
        out = client.python(f"""
            import socket, subprocess, time
            ssh = subprocess.Popen(["ssh", "-i", {str(tmp_path / 'id')!r}, "-o", "StrictHostKeyChecking=accept-new",
                                    "-o", "UserKnownHostsFile={tmp_path / 'known_hosts'}", "-o", "BatchMode=yes",
                                    "-N", "-o", "ExitOnForwardFailure=yes", "-L", "23000:localhost:23000",
                                    "-p", "{port}", "tunnel@{HOST_END}"])
            try:
                for _ in range(150):
                    try:
                        socket.create_connection(("127.0.0.1", 23000), timeout=1).close()
                        break
                    except OSError:
                        time.sleep(0.1)
                from TimeTaggerRPC import client
                TT = client.createProxy(host='localhost', port=23000)
                print(TT.createTimeTagger().getSerial())
            finally:
                ssh.terminate()
        """)
        assert out.stdout.strip().endswith("SIM")
        sidecar = container_ip(f"acc-{uid}-ssh-sshd-1")
        assert reachable(sidecar, 2222) and not reachable(sidecar, 23000)
