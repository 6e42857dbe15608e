"""Helpers for the container tests: the docker CLI, compose projects, bounded waiting."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import helpers
from helpers import REPO, free_port  # noqa: F401 - free_port re-exported: the container tests import it from here

T = TypeVar("T")
ENGINE_SCRIPT = REPO.parent / "shared" / "machine" / "docker-engine.sh"
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
SYSTEM_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# Names of everything these tests create start with the branch name, so parallel work on
# the same engine never collides, and a leftover is easy to attribute.
RUN_ID = uuid.uuid4().hex[:8]
PREFIX = "docker-test"


def docker(*args: str, timeout_s: float = 120, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run the docker CLI; on failure, raise with its output so the test report shows why."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout_s, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return docker("info", timeout_s=30, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def wait_until(check: Callable[[], T], timeout_s: float, pause_s: float = 0.25, what: str = "condition") -> T:
    """The shared wait_until with this package's argument order; errors mean "not up yet"."""
    return helpers.wait_until(check, timeout_s, what, pause_s, retry_on=(Exception,))


@dataclass
class ComposeProject:
    """Where a compose project's ports are and how to run compose against it."""

    name: str
    files: list[Path]
    env_file: Path
    rpc_port: int
    metrics_port: int

    def compose(self, *args: str, timeout_s: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        files = [a for f in self.files for a in ("-f", str(f))]
        return docker("compose", "--env-file", str(self.env_file), *files, "-p", self.name, *args,
                      timeout_s=timeout_s, check=check)

    def container_id(self, service: str = "taggerhub") -> str:
        return self.compose("ps", "--all", "--quiet", service).stdout.strip()

    def exec(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.compose("exec", "-T", "taggerhub", *command, check=check)

    def health(self) -> str:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", self.container_id()).stdout)
        return state.get("Health", {}).get("Status", "none")

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, volumes and networks compose made for this project that still exist."""
        label = f"label=com.docker.compose.project={self.name}"
        return {
            "containers": docker("ps", "--all", "--quiet", "--filter", label).stdout.split(),
            "volumes": docker("volume", "ls", "--quiet", "--filter", label).stdout.split(),
            "networks": docker("network", "ls", "--quiet", "--filter", label).stdout.split(),
        }


def write_env_file(path: Path, image: str, rpc_port: int, metrics_port: int, extra: str = "") -> Path:
    path.write_text(
        f"TAGGERHUB_IMAGE={image}\nTAGGERHUB_BIND=127.0.0.1\n"
        f"TAGGERHUB_RPC_PORT={rpc_port}\nTAGGERHUB_METRICS_PORT={metrics_port}\n{extra}"
    )
    return path
