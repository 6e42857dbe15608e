"""Refusing unsafe binds, idle and handshake timeouts, over real processes."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time

import pytest

from helpers import trickle
from taggerhub import client
from taggerhub.config import ConfigError, Settings
from taggerhub.server.listener import check_exposure, is_loopback


def test_serve_refuses_non_loopback_bind_without_auth_and_tls():
    result = subprocess.run([sys.executable, "-m", "taggerhub", "serve", "--host", "0.0.0.0", "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refusing to listen on '0.0.0.0'" in result.stderr and "--insecure" in result.stderr


def test_insecure_allows_it_with_a_warning_and_loopback_needs_nothing(caplog):
    settings = Settings()
    settings.server.host = "0.0.0.0"
    settings.auth.enabled = True
    with pytest.raises(ConfigError, match="without TLS"):
        check_exposure(settings)
    settings.server.insecure = True
    with caplog.at_level(logging.WARNING, logger="taggerhub.listener"):
        check_exposure(settings)
    assert "INSECURE" in caplog.text
    assert is_loopback("localhost") and is_loopback("127.0.0.1") and not is_loopback("0.0.0.0")
    check_exposure(Settings())  # localhost: fine


def test_silent_client_is_dropped_after_handshake_timeout_and_idle_client_after_idle_timeout(start_auth_server):
    server = start_auth_server(TAGGERHUB_SERVER_HANDSHAKE_TIMEOUT_S="1", TAGGERHUB_SERVER_IDLE_TIMEOUT_S="1.5")
    with socket.create_connection(("127.0.0.1", server.port)) as silent:
        silent.settimeout(5)
        started = time.monotonic()
        answer = b""
        while chunk := silent.recv(1000):  # at most a CONNECTFAIL, then the server closes
            answer += chunk
        assert 0.8 < time.monotonic() - started < 8
        assert answer == b"" or answer.startswith(b"PYRO")
    idle = client.createProxy(port=server.port, token=server.tokens["otto"])
    assert idle.getVersion()
    time.sleep(2.5)
    admin = client.createProxy(port=server.port, token=server.tokens["ada"])
    assert not any(r["user"] == "otto" for r in admin.hub_sessions())  # dropped while idle
    assert idle.getVersion()  # read calls reconnect by themselves
    assert admin.hub_metrics()["rpc"]["refused_handshakes"]["handshake_timeout"] >= 1


def test_trickling_pyro_handshake_is_cut_at_the_deadline(start_auth_server):
    """One byte every 0.25 s never trips a per-read timeout; the handshake deadline still applies."""
    from Pyro5 import protocol, serializers

    server = start_auth_server(TAGGERHUB_SERVER_HANDSHAKE_TIMEOUT_S="1.5")
    data = serializers.serializers_by_id[4].dumps({"handshake": {"token": server.tokens["otto"]},
                                                   "object": "TimeTaggerRPC"})
    frame = protocol.SendingMessage(protocol.MSG_CONNECT, 0, 0, 4, data).data
    # closed, or told why (a PYRO frame) and then closed
    closed, elapsed = trickle(server.port, frame[:-1], 0.25, lambda chunk: chunk == b"" or chunk.startswith(b"PYRO"))
    assert closed and 1.3 < elapsed < 8, f"closed={closed} after {elapsed:.1f} s of {len(frame)} bytes"


def test_serve_with_auth_but_no_users_file_names_the_file(tmp_path):
    env = {"TAGGERHUB_AUTH_ENABLED": "true", "TAGGERHUB_AUTH_USERS_FILE": str(tmp_path / "missing.toml")}
    result = subprocess.run([sys.executable, "-m", "taggerhub", "serve", "--port", "0"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, **env})
    assert result.returncode == 2
    assert "missing.toml' does not exist" in result.stderr and "taggerhub user add" in result.stderr


def test_second_serve_on_a_busy_port_says_so_in_one_line_and_exits_2(server):
    """A real server holds the port; a second `taggerhub serve` on it names the address and the fix."""
    result = subprocess.run([sys.executable, "-m", "taggerhub", "serve", "--port", str(server.port)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("{")]  # JSON log lines aside
    assert errors == [f"taggerhub serve: cannot listen on localhost:{server.port}: the port is already in use "
                      "(another taggerhub serve, or another program); stop it, or choose a free port with --port "
                      "or [server] port"]
    assert client.createProxy(port=server.port).getVersion()  # the first server is unaffected
