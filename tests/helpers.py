"""Small helpers shared by the test tree: free ports, bounded waiting, stopping subprocesses, lab files.

A plain module (``pythonpath = ["tests"]`` in pyproject.toml), so tests import it as
``helpers`` no matter which of the several ``conftest.py`` files pytest loaded first.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
ANSIBLE = REPO / "ansible"
ROLE = ANSIBLE / "roles" / "taggerhub"
SYSTEMD = REPO / "systemd"
VENV_BIN = Path(sys.executable).parent  # the test run's own venv: its ansible-playbook, taggerhub, ...


def require_commands(*names: str) -> None:
    """Fail, never skip, when a command a test drives is missing: a broken setup must not pass quietly.

    ``bash .ci/run`` installs every one of them (README, "Tests").
    """
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: this test drives it for real (`bash .ci/run` installs it)",
                    pytrace=False)


def require_docker() -> None:
    """Fail unless a Docker engine answers (``bash .ci/run`` starts one)."""
    require_commands("docker")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        pytest.fail(f"no Docker engine answers (`bash .ci/run` starts one): {info.stderr.strip()[-300:]}",
                    pytrace=False)


def require_files(*paths: Path) -> None:
    """Fail when files a test reads are missing (they are part of the checkout, or made by ``.ci/run``)."""
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}", pytrace=False)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (never a fixed port in tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until something accepts TCP connections on loopback ``port``; fail early if ``proc`` exits."""
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


def wait_until(predicate: Callable[[], T], timeout_s: float = 10.0, what: str = "condition", every_s: float = 0.2,
               *, retry_on: tuple[type[Exception], ...] = ()) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; bounded in time.

    Exceptions of the types in ``retry_on`` count as "not yet" (the thing polled may be
    restarting); the last value or error is named in the AssertionError on timeout.
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except retry_on as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")
        time.sleep(every_s)


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> int | None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL: a clean shutdown where possible, never a hang."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextlib.contextmanager
def vendor_rpc_server(log_path: Path) -> Iterator[int]:
    """The vendor's unchanged TimeTaggerRPC server over taggerhub's simulator, as bench/ runs it; yields its port."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "taggerhub.sim.vendor_rpc", "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT)
        try:

            def started() -> bool:
                assert proc.poll() is None, log_path.read_text()
                return "Server URI" in log_path.read_text()

            wait_until(started, 30, "the vendor server to start", 0.1)
            yield port
        finally:
            stop_process(proc)


def trickle(port: int, data: bytes, every_s: float,
            closed_when: Callable[[bytes], bool] = lambda chunk: chunk == b"") -> tuple[bool, float]:
    """Send ``data`` to loopback ``port`` one byte per ``every_s`` (a slow-loris client).

    Returns whether the server closed the connection (``closed_when`` of a read says so, or the
    socket fails) and the seconds from connecting until then (or until all bytes were sent).
    """
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(every_s)
        started = time.monotonic()
        for byte in data:
            try:
                sock.send(bytes([byte]))
                if closed_when(sock.recv(100)):
                    return True, time.monotonic() - started
            except TimeoutError:
                continue
            except OSError:
                return True, time.monotonic() - started
        return False, time.monotonic() - started


def poisson_lab(*devices: tuple[str, float] | tuple[str, float, str], channel: int = 1) -> str:
    """A simulator lab file (TOML): one tagger per ``(serial, rate_hz[, model])``, a Poisson source on ``channel``."""
    return "".join(f"""
[[device]]
serial = "{serial}"
model = "{model[0] if model else 'Time Tagger Ultra'}"

[[device.source]]
kind = "poisson"
channel = {channel}
rate_hz = {float(rate)}
""" for serial, rate, *model in devices)


def render_role_templates(tmp_path: Path, templates: list[str], **variables: object) -> None:
    """Render the Ansible role's templates with its defaults (and ``variables``, above them) into tmp_path."""
    ansible, venv_bin = REPO / "ansible", Path(sys.executable).parent
    role = ansible / "roles" / "taggerhub"
    playbook = tmp_path / "render.yml"
    playbook.write_text(json.dumps([{
        "name": "Render role templates with the role's defaults.",
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [str(role / "defaults" / "main.yml"), str(role / "vars" / "main.yml")],
        "tasks": [{"name": "Render each template.", "loop": templates, "ansible.builtin.template": {
            "src": f"{role}/templates/{{{{ item }}}}.j2", "dest": f"{tmp_path}/{{{{ item }}}}", "mode": "0644"}}],
    }]))
    # The exporter scraper's credential, which the role's config.yml makes once on the controller (beside the play).
    (tmp_path / "tokens").mkdir(exist_ok=True)
    (tmp_path / "tokens" / "scraper-prometheus.token").write_text("prometheus." + "ab" * 32)
    (tmp_path / "extra.json").write_text(json.dumps(variables))
    result = subprocess.run([str(venv_bin / "ansible-playbook"), "-i", "localhost,", "-e", f"@{tmp_path}/extra.json",
                             str(playbook)], capture_output=True, text=True, timeout=120,
                            env={"ANSIBLE_CONFIG": str(ansible / "ansible.cfg"), "PATH": f"{venv_bin}:/usr/bin:/bin",
                                 "ANSIBLE_LOCALHOST_WARNING": "false", "HOME": str(Path.home())})
    assert result.returncode == 0, result.stdout + result.stderr


@dataclass
class AuthServer:
    """A server with auth on, and what a test needs to act as its users and read its audit log."""

    server: object
    users_file: Path
    audit_file: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.server.port  # type: ignore[attr-defined]

    def audit(self) -> list[dict]:
        return [json.loads(line) for line in self.audit_file.read_text().splitlines()]
