"""The sshd sidecar for real: the seed's `ssh -L` recipe from a client in its own network namespace.

One lab per module: the sidecar container (``sshd/``) with authorized keys in
a config volume, the taggerhub server on ``localhost:23000`` in the sidecar's
network namespace (the seed's "run the server on localhost only"; compose
shares the namespace the same way), and a client namespace joined to the
sidecar by a veth pair.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from netlab import RPC_PORT, Container, NamespacedServer, Netns, build_image, link, require_netns, run, wait_for

from helpers import stop_process

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SSHD_ADDR, CLIENT_ADDR = "10.215.0.1", "10.215.0.2"
SSHD_PORT = 2222


@dataclass
class SshLab:
    uid: str
    root: Path
    sidecar: Container
    client: Netns
    server: NamespacedServer

    def ssh(self, *extra: str, key: str = "id") -> list[str]:
        return self.client.cmd(
            "ssh", "-i", str(self.root / key), "-o", f"UserKnownHostsFile={self.root / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-p", str(SSHD_PORT), *extra, f"tunnel@{SSHD_ADDR}",
        )

    @contextlib.contextmanager
    def forward(self, spec: str) -> Iterator[int]:
        """`ssh -N -L spec` in the client namespace; yield the local port once it listens."""
        proc = subprocess.Popen(self.ssh("-N", "-o", "ExitOnForwardFailure=yes", "-L", spec),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        local = int(spec.split(":")[0])
        try:
            listening = self.client.python(f"""
                import socket, time
                for _ in range(150):
                    try:
                        socket.create_connection(("127.0.0.1", {local}), timeout=1).close()
                        print("up"); break
                    except OSError:
                        time.sleep(0.1)
            """)
            if "up" not in listening.stdout:
                proc.kill()
                raise AssertionError(f"ssh -L {spec} did not come up: {proc.communicate()[1]}")
            yield local
        finally:
            stop_process(proc)


def keygen(path: Path) -> str:
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)])
    return path.with_suffix(".pub").read_text()


@pytest.fixture(scope="module")
def ssh_lab(tmp_path_factory) -> Iterator[SshLab]:
    require_netns("ssh", "ssh-keygen")
    image = build_image("sshd", "acc-sshd:test")
    uid = secrets.token_hex(3)
    root = tmp_path_factory.mktemp("ssh")
    (root / "config" / "ssh").mkdir(parents=True)
    (root / "config" / "ssh" / "authorized_keys").write_text(keygen(root / "id"))
    with contextlib.ExitStack() as stack:
        sidecar = Container(f"acc-{uid}-ssh", image, "-v", f"{root / 'config'}:/config:ro",
                            "-e", "SSHD_SYNC_INTERVAL_S=1")
        stack.callback(sidecar.close)
        wait_for(lambda: "Server listening" in sidecar.logs(), "sshd in the sidecar")
        host_key = sidecar.exec("cat", "/etc/ssh/host_keys/ssh_host_ed25519_key.pub").stdout.strip()
        (root / "known_hosts").write_text(f"[{SSHD_ADDR}]:{SSHD_PORT} {host_key}\n")
        client = Netns(f"acc-{uid}-s")
        stack.callback(client.close)
        link(sidecar, client, f"acc{uid}", "s", CLIENT_ADDR, SSHD_ADDR)
        server = NamespacedServer(sidecar, root / "server.log")  # localhost:23000, as the seed says
        stack.callback(server.close)
        yield SshLab(uid, root, sidecar, client, server)


def test_seed_ssh_example_runs_through_the_forward(ssh_lab):
    with ssh_lab.forward(f"23001:localhost:{RPC_PORT}"):
        out = ssh_lab.client.python("""
            from taggerhub import client
            TT = client.createProxy(host='localhost', port=23001)
            tagger_proxy = TT.createTimeTagger()
            print(tagger_proxy.getSerial())
            rate = TT.Countrate(tagger_proxy, [1])
            tagger_proxy.setTestSignal(1, True)
            rate.startFor(int(1e11)); rate.waitUntilFinished(10_000)
            print(rate.getData()[0])
        """)
    serial, value = out.stdout.split()
    assert serial.endswith("SIM")
    assert float(value) == pytest.approx(800e3, rel=0.02)


def test_vendor_client_works_when_forwarding_the_same_port_number(ssh_lab):
    # TimeTaggerRPC's proxies follow the server's own URIs (localhost:23000), so forward that port.
    with ssh_lab.forward(f"{RPC_PORT}:localhost:{RPC_PORT}"):
        out = ssh_lab.client.python(f"""
            from TimeTaggerRPC import client
            TT = client.createProxy(host='localhost', port={RPC_PORT})
            tagger_proxy = TT.createTimeTagger()
            print(tagger_proxy.getSerial())
        """)
    assert out.stdout.strip().endswith("SIM")


def test_password_login_is_refused_even_with_the_right_password(ssh_lab):
    ssh_lab.sidecar.exec("sh", "-c", "echo tunnel:right-password | chpasswd")
    asked = ssh_lab.root / "askpass-was-asked"
    askpass = ssh_lab.root / "askpass"
    askpass.write_text(f"#!/bin/sh\ntouch {asked}\necho right-password\n")
    askpass.chmod(0o700)
    cmd = ssh_lab.ssh("-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
                      "-o", "BatchMode=no", "-o", "NumberOfPasswordPrompts=1")
    done = run(["env", f"SSH_ASKPASS={askpass}", "SSH_ASKPASS_REQUIRE=force", "DISPLAY=none", *cmd, "true"],
               check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 255
    assert "Permission denied (publickey)" in done.stderr
    assert not asked.exists()  # the server never even offered a password prompt


def test_unknown_key_is_refused_until_added_to_the_config_volume(ssh_lab):
    keys = ssh_lab.root / "config" / "ssh" / "authorized_keys"
    original = keys.read_text()
    newcomer = keygen(ssh_lab.root / "newcomer")
    refused = run(ssh_lab.ssh("-N", "-o", "ExitOnForwardFailure=yes", key="newcomer"), check=False, timeout=30)
    assert refused.returncode == 255 and "Permission denied (publickey)" in refused.stderr
    keys.write_text(original + newcomer)
    try:
        wait_for(lambda: "authorized keys: 2" in ssh_lab.sidecar.logs(), "the sidecar to re-read its keys")
        shell = run([*ssh_lab.ssh("-o", "RequestTTY=no", key="newcomer"), "id"], check=False, timeout=30)
        assert shell.returncode == 1  # authenticated, then nologin: no shell, no command
        assert "This account is currently not available" in shell.stdout + shell.stderr
        assert "uid=" not in shell.stdout
    finally:
        keys.write_text(original)


def test_forward_to_any_other_port_is_refused(ssh_lab):
    # sshd's own port listens in the same namespace: a refused forward is policy, not a closed port.
    with ssh_lab.forward(f"23002:localhost:{SSHD_PORT}") as local:
        out = ssh_lab.client.python(f"""
            import socket
            s = socket.create_connection(("127.0.0.1", {local}), timeout=5)
            s.settimeout(5)
            print(repr(s.recv(64)))
        """)
    assert out.stdout.strip() == "b''"
    assert f"connect to host localhost port {SSHD_PORT}, but the request was denied" in ssh_lab.sidecar.logs()
    remote = run(ssh_lab.ssh("-N", "-o", "ExitOnForwardFailure=yes", "-R", f"23005:localhost:{RPC_PORT}"),
                 check=False, timeout=30)
    assert remote.returncode == 255 and "remote port forwarding failed" in remote.stderr


def test_sshd_runs_with_no_agent_x11_tty_or_tunnel(ssh_lab):
    effective = ssh_lab.sidecar.exec("sh", "-c", 'sshd -T -f /etc/ssh/taggerhub_sshd_config -o "Port=$SSHD_PORT" '
                                                 '-o "PermitOpen=$SSHD_PERMIT_OPEN"').stdout
    settings = dict(line.split(" ", 1) for line in effective.splitlines() if " " in line)
    assert settings["allowagentforwarding"] == "no"
    assert settings["x11forwarding"] == "no"
    assert settings["permittty"] == "no"
    assert settings["permittunnel"] == "no"
    assert settings["allowtcpforwarding"] == "local"
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["authenticationmethods"] == "publickey"
    assert settings["forcecommand"] == "/usr/sbin/nologin"
    assert settings["permitopen"] == f"localhost:{RPC_PORT} 127.0.0.1:{RPC_PORT}"
    # From the client's side, only sshd answers; the RPC port listens on the sidecar's loopback only.
    reachable = ssh_lab.client.python(f"""
        import socket
        for port in ({SSHD_PORT}, {RPC_PORT}):
            s = socket.socket(); s.settimeout(3)
            print(port, s.connect_ex(({SSHD_ADDR!r}, port)) == 0)
    """).stdout.split()
    assert reachable == [str(SSHD_PORT), "True", str(RPC_PORT), "False"]

