"""Fixtures that start real taggerhub servers on free loopback ports: in this process, or as processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import free_port, require_commands, stop_process, wait_for_port
from taggerhub import pyfix
from taggerhub.testing import ServerContext

pyfix.serialize_ast_parse()  # pytest's reports and in-process servers' worker threads both parse source


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
        stop_process(self.proc, timeout_s)
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


@pytest.fixture
def start_hub() -> Iterator:
    """Factory: start_hub(env=..., **sections) -> a ServerContext in this process; all are stopped afterwards."""
    contexts: list[ServerContext] = []

    def start(env: dict[str, str] | None = None, **sections: dict) -> ServerContext:
        context = ServerContext(env={"TAGGERHUB_SIMULATOR_CLOCK": "realtime", **(env or {})}, **sections)
        contexts.append(context.__enter__())
        return context

    yield start
    for context in contexts:
        context.stop()


@pytest.fixture
def hub(start_hub) -> ServerContext:
    """One simulator server on the wall clock, in this process: for tests about what it serves, not its process."""
    return start_hub()


# The folder says what a test needs: tests/unit (in-process, no server), tests/integration (a real server on
# loopback), tests/system (a Docker engine, Ansible, network namespaces, a real Prometheus, sshd, WireGuard,
# Chromium). `-m "not system"` is the fast run.
KINDS = ("unit", "integration", "system")
TESTS = Path(__file__).resolve().parent


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.needs("cmd", ...)``: the test fails (never skips) when a command it drives is missing."""
    for mark in item.iter_markers("needs"):
        require_commands(*mark.args)


# Parallel runs (pytest-xdist, `-n 2 --dist loadfile`: README, "Tests") hand a module's tests to one worker, in
# order: module fixtures (a converged lab, a compose project) are made once and a module's tests never race each
# other. The two modules that build a lab of systemd containers and converge it run on one worker, one after the
# other: side by side they starve each other's converge. (`--dist loadgroup` with xdist_group marks would say
# so too, but pytest-xdist 3.8 loses the marks on pytest 9.2: pytest-dev/pytest-xdist#1386.)
ONE_WORKER = {
    "tests/system/deploy/test_playbook.py": "deploy-labs",
    "tests/system/deploy/test_lab_monitoring.py": "deploy-labs",
}
LONG_FIRST = (  # the longest modules of a full run, longest first, so that none starts last on a worker
    "system/deploy/test_playbook.py",
    "system/deploy/test_lab_monitoring.py",
    "integration/discovery/test_discovery.py",
)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: plain `pytest` runs without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadfile``, with the modules of ``ONE_WORKER`` handed out together."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return ONE_WORKER.get(module, module)

    return ModuleScheduling(config, log)


def long_first(item: pytest.Item) -> int:
    module = Path(str(item.fspath)).resolve().relative_to(TESTS).as_posix()
    return LONG_FIRST.index(module) if module in LONG_FIRST else len(LONG_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test unit, integration or system by the top folder it lives in; longest modules first."""
    for item in items:
        kind = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        if kind not in KINDS:
            raise pytest.UsageError(f"{item.nodeid}: tests live under tests/{{unit,integration,system}}/")
        item.add_marker(getattr(pytest.mark, kind))
    items.sort(key=long_first)  # stable: the order within and among the other modules is kept
