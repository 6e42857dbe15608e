"""The container with auth and TLS on: no insecure flag, healthy, watched, served only with a token over TLS."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from taggerhub import client

from .containers import PREFIX, REPO, RUN_ID, ComposeProject, free_port, wait_until, write_env_file

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def taggerhub_cli(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "taggerhub", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def lab_config(root: Path, *hosts: str) -> tuple[Path, str, str]:
    """A config directory as docs/container.md builds it: certs (for ``hosts`` too), users, taggerhub.toml."""
    config = root / "config"
    config.mkdir(mode=0o755)
    names = [a for host in ("127.0.0.1", "localhost", *hosts) for a in ("--host", host)]
    taggerhub_cli("certs", "init", str(config / "pki"), *names)
    (config / "pki" / "ca-key.pem").unlink()  # the CA key does not belong on the server
    users = str(config / "users.toml")

    def add_user(name: str, role: str) -> str:  # prints the new token last
        return taggerhub_cli("user", "--users-file", users, "add", "--role", role, name).strip().splitlines()[-1]

    alice, monitor = add_user("alice", "operator"), add_user("monitor", "observer")
    (config / "taggerhub.toml").write_text(
        '[auth]\nenabled = true\nusers_file = "/etc/taggerhub/users.toml"\n'
        '[tls]\nenabled = true\ncert_file = "/etc/taggerhub/pki/server.pem"\n'
        'key_file = "/etc/taggerhub/pki/server-key.pem"\nca_file = "/etc/taggerhub/pki/ca.pem"\n'
    )
    for path in [config, *config.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    key = config / "pki" / "server-key.pem"
    if os.geteuid() == 0:
        os.chown(key, 10001, -1)  # the container user, and only it, reads the key
        key.chmod(0o600)
    return config, alice, monitor


def test_auth_and_tls_container_is_healthy_watched_and_serves_only_with_a_token(taggerhub_image, tmp_path: Path):
    config, alice, monitor = lab_config(tmp_path)
    rpc_port, metrics_port = free_port(), free_port()
    env = write_env_file(tmp_path / "test.env", taggerhub_image, rpc_port, metrics_port, extra=(
        f"TAGGERHUB_CONFIG_DIR={config}\nTAGGERHUB_INSECURE=false\n"
        f"TAGGERHUB_MONITOR_TOKEN={monitor}\nTAGGERHUB_MONITOR_TLS_CA=/etc/taggerhub/pki/ca.pem\n"
    ))
    project = ComposeProject(f"{PREFIX}-secure-{RUN_ID}", [REPO / "compose.yaml"], env, rpc_port, metrics_port)
    ca = str(config / "pki" / "ca.pem")
    try:
        project.compose("up", "--detach", "--wait", "--wait-timeout", "120", "--no-build", "--pull", "never")
        assert project.health() == "healthy"

        TT = client.createProxy(host="127.0.0.1", port=rpc_port, token=alice, tls_ca=ca)
        tagger = TT.createTimeTagger()
        tagger.setTestSignal(1, True)
        rate = TT.Countrate(tagger, [1])
        rate.startFor(int(0.1e12))
        rate.waitUntilFinished()
        assert rate.getData()[0] == pytest.approx(800e3, rel=0.05)

        with pytest.raises(Exception, match="token"):  # no token: refused in the handshake
            client.createProxy(host="127.0.0.1", port=rpc_port, token="", tls_ca=ca).hub_status()

        def exporter_up() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
                return "\ntaggerhub_up 1.0\n" in response.read().decode()

        wait_until(exporter_up, timeout_s=30, what="the exporter reading the server over TLS")
        assert "INSECURE" not in project.compose("logs", "--no-log-prefix", "taggerhub").stdout
    finally:
        project.compose("down", "--volumes", "--timeout", "10", check=False)
