"""Helpers for remote-access tests: network namespaces, sidecar containers, servers inside them.

A "remote client" is a process in its own network namespace (``ip netns``),
linked to a sidecar container by a veth pair and to nothing else; the
taggerhub server runs in the sidecar's namespace (``nsenter``), as it does
with compose's ``network_mode: service:...``. Every name starts with ``acc``
and a random part, and every fixture removes what it made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from helpers import REPO, stop_process, wait_until

T = TypeVar("T")
RPC_PORT = 23000  # inside private namespaces, the seed's default port is free


def run(cmd: list[str], timeout: float = 60, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure show its output in the assertion."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def _missing_tools(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def require_netns(*tools: str) -> None:
    """Fail (never skip) without root or a tool: these tests are the only check of the VPN and sshd setups."""
    if os.geteuid() != 0:
        pytest.fail("network namespaces need root (`bash .ci/run` runs as root)", pytrace=False)
    missing = _missing_tools("ip", "nsenter", *tools)
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)} (`bash .ci/run` installs them)", pytrace=False)


def require_docker() -> None:
    if shutil.which("docker") is None or run(["docker", "info"], check=False, timeout=30).returncode != 0:
        pytest.fail("no Docker engine (`bash .ci/run` starts one)", pytrace=False)


def base_image() -> str:
    return os.environ.get("TAGGERHUB_BASE_IMAGE") or "local/bookworm-py:latest"


def wait_for(predicate: Callable[[], T], what: str, timeout_s: float = 20.0, every_s: float = 0.1) -> T:
    """The shared wait_until with this module's argument order (``what`` second) and defaults."""
    return wait_until(predicate, timeout_s, what, every_s)


class Netns:
    """A named network namespace with loopback up; deleted (with its links) on close."""

    def __init__(self, name: str):
        self.name = name
        run(["ip", "netns", "add", name])
        run(self.cmd("ip", "link", "set", "lo", "up"))

    def cmd(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def python(self, code: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        """Run Python code with the project's interpreter inside this namespace."""
        return run(self.cmd(sys.executable, "-c", textwrap.dedent(code)), timeout=timeout, check=check)

    def close(self) -> None:
        # wireguard-go holds the namespace open until its interface is deleted.
        links = run(self.cmd("ip", "-o", "link", "show"), check=False).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name != "lo":
                run(self.cmd("ip", "link", "del", name), check=False)
        run(["ip", "netns", "del", self.name], check=False)


class Container:
    """A detached sidecar container with no network but the veth links the test adds."""

    def __init__(self, name: str, image: str, *args: str):
        self.name = name
        run(["docker", "run", "-d", "--name", name, "--network", "none", *args, image])
        self.pid = run(["docker", "inspect", "-f", "{{.State.Pid}}", name]).stdout.strip()

    def nsenter(self, *argv: str) -> list[str]:
        """A command line that runs in this container's network namespace (from the host)."""
        return ["nsenter", "-t", self.pid, "-n", *argv]

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(["docker", "exec", self.name, *argv], check=check)

    def logs(self) -> str:
        done = run(["docker", "logs", self.name], check=False)
        return done.stdout + done.stderr

    def close(self) -> None:
        # --volumes: the sshd image declares one (VOLUME /etc/ssh/host_keys); without it, one
        # anonymous volume per run stays on the engine.
        run(["docker", "rm", "--force", "--volumes", self.name], check=False)


def link(container: Container, ns: Netns, prefix: str, side: str, client_ip: str, server_ip: str) -> None:
    """Join a namespace to a container with a veth pair, addresses /24 on both ends."""
    run(["ip", "link", "add", f"{prefix}{side}c", "netns", ns.name, "type", "veth",
         "peer", "name", f"{prefix}{side}s", "netns", container.pid])
    run(ns.cmd("ip", "addr", "add", f"{client_ip}/24", "dev", f"{prefix}{side}c"))
    run(ns.cmd("ip", "link", "set", f"{prefix}{side}c", "up"))
    run(container.nsenter("ip", "addr", "add", f"{server_ip}/24", "dev", f"{prefix}{side}s"))
    run(container.nsenter("ip", "link", "set", f"{prefix}{side}s", "up"))


class NamespacedServer:
    """`taggerhub serve` inside a container's network namespace (compose's network_mode: service:X)."""

    def __init__(self, container: Container, log_path: Path, *args: str):
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            container.nsenter(sys.executable, "-m", "taggerhub", "serve", "--port", str(RPC_PORT), *args),
            stdout=self._log, stderr=subprocess.STDOUT,
        )

        def serving() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early: {self.log()}")
            return '"event": "serving"' in self.log()

        wait_for(serving, "taggerhub serve")

    def log(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        stop_process(self.proc)
        self._log.close()


def build_image(context: str, tag: str) -> str:
    require_docker()
    run(["docker", "build", "-q", "-t", tag, "--build-arg", f"BASE_IMAGE={base_image()}", str(REPO / context)],
        timeout=600)
    return tag
