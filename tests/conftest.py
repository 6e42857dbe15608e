"""Fixtures that start real taggerhub server processes on free loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout_s} s")


class ServerProcess:
    """A `taggerhub serve` subprocess; logs go to a file for post-mortems."""

    def __init__(self, tmp_path: Path, *extra: str, env: dict[str, str] | None = None, port: int | None = None):
        self.port = port or free_port()
        self.log_path = tmp_path / f"server-{self.port}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        cmd = [sys.executable, "-m", "taggerhub", "serve", "--port", str(self.port), *extra]
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        wait_for_port(self.port, proc=self.proc)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout_s: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator:
    """Factory: start_server(*args) -> ServerProcess; every one is stopped afterwards."""
    servers: list[ServerProcess] = []

    def start(*extra: str, env: dict[str, str] | None = None, port: int | None = None) -> ServerProcess:
        server = ServerProcess(tmp_path, *extra, env=env, port=port)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server) -> ServerProcess:
    """One simulator server on the wall clock."""
    return start_server()
