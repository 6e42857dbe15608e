"""`taggerhub status`: the container health check, so its exit status must be right."""

from __future__ import annotations

import json
import socket
import subprocess
import sys


def run_status(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "taggerhub", "status", *args],
                          capture_output=True, text=True, timeout=60)


def test_status_exits_1_with_a_one_line_message_when_nothing_listens():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_status("--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is not reachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_exits_0_and_reports_the_backend_when_the_server_answers(hub):
    result = run_status("--host", "127.0.0.1", "--port", str(hub.port), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backend"] == "simulator"
