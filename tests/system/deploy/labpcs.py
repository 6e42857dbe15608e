"""Throwaway lab PCs for the playbook tests: systemd containers converged by ansible-playbook.

Containers stand in for lab PCs, reached through the community.docker.docker connection:
systemd runs as PID 1 (tests/system/deploy/labpc.Dockerfile) and the role installs and starts
taggerhub on them from a wheelhouse built once per test session from this checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ANSIBLE, REPO, VENV_BIN

BASE_IMAGE = os.environ.get("TAGGERHUB_BASE_IMAGE", "local/bookworm-py:latest")

_wheelhouse: Path | None = None


def docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def run(*cmd: str, timeout: float = 300, check: bool = True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """taggerhub and its dependencies as wheels (the role's offline install path), built once per session."""
    global _wheelhouse
    if _wheelhouse is None:
        folder = tmp_path_factory.mktemp("wheelhouse")
        # With the web extra: a role with taggerhub_web_enabled installs it (tests/system/deploy/test_playbook.py).
        run(sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(folder), f"{REPO}[web]", timeout=600)
        _wheelhouse = folder
    return _wheelhouse


class LabPCs:
    """Throwaway lab PCs: containers with systemd as init, removed at the end.

    ``network``: a Docker network of the caller's to attach them to (where they find each
    other by container name); default: Docker's bridge.
    """

    def __init__(self, prefix: str, network: str | None = None):
        self.prefix = prefix
        self.network = network
        self.names: dict[str, str] = {}
        self.ips: dict[str, str] = {}

    @staticmethod
    def build_image(target: str) -> str:
        """The lab PC image (a stage of labpc.Dockerfile); shared by the playbook tests, kept between runs."""
        tag = f"deploy-{target}:test"
        run("docker", "build", "--quiet", "--tag", tag, "--target", target, "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
            "--file", str(Path(__file__).with_name("labpc.Dockerfile")), str(Path(__file__).parent), timeout=600)
        return tag

    def start(self, host: str, image: str, *extra: str) -> None:
        name = f"{self.prefix}-{host}"
        network = ["--network", self.network] if self.network else []
        # systemd needs to mount (PrivateTmp, ProtectSystem) and nft needs the netns' netfilter;
        # --privileged is refused by this engine, these capabilities are enough.
        run("docker", "run", "--detach", "--name", name, "--hostname", host, *network,
            "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--security-opt", "seccomp=unconfined",
            "--tmpfs", "/run", "--tmpfs", "/run/lock", *extra, image)
        self.names[host] = name

    def wait_booted(self, host: str) -> None:
        """Wait for systemd in the PC to finish booting, then note the PC's address."""
        name = self.names[host]
        for _ in range(60):
            state = run("docker", "exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"systemd in {name} did not come up: {state}")
        template = ("{{.NetworkSettings.IPAddress}}" if not self.network
                    else f'{{{{(index .NetworkSettings.Networks "{self.network}").IPAddress}}}}')
        self.ips[host] = run("docker", "inspect", "--format", template, name).stdout.strip()

    def boot(self, host: str, image: str, *extra: str) -> None:
        self.start(host, image, *extra)
        self.wait_booted(host)

    def exec(self, host: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return run("docker", "exec", self.names[host], *cmd, check=check, timeout=120)

    def remove(self) -> None:
        for name in self.names.values():
            subprocess.run(["docker", "rm", "--force", "--volumes", name], capture_output=True, timeout=120)

    def journals(self, units: str = "taggerhub*") -> str:
        """The services' own words from every PC, for a failed run's message."""
        parts = []
        for host in self.names:
            journal = self.exec(host, "journalctl", "--no-pager", "--lines=40", f"--unit={units}", check=False)
            parts.append(f"\n--- {host}: journal ---\n{journal.stdout[-3000:]}")
        return "".join(parts)


Recap = dict[str, dict[str, int]]  # PLAY RECAP: host -> {ok, changed, failed, ...}


def native_simulator_vars(wheels: Path) -> dict[str, object]:
    """Inventory variables every test lab PC shares: a container reached through Docker,
    taggerhub installed natively from this checkout's wheels, the simulator as backend."""
    return {
        "ansible_connection": "community.docker.docker",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_become": False,  # already root in the container; no sudo there
        "taggerhub_mode": "native",
        "taggerhub_backend": "simulator",
        "taggerhub_native_extras": [],
        "taggerhub_wheelhouse_local_dir": str(wheels),
    }


def playbook(inventory: Path, cwd: Path, *args: str, timeout: float = 400) -> tuple[int, str, Recap]:
    """Run ansible/deploy.yml on the inventory; return its status, output and PLAY RECAP per host."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0", "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    result = run(str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), *args, str(ANSIBLE / "deploy.yml"),
                 timeout=timeout, check=False, env=env, cwd=cwd)
    out = result.stdout + result.stderr
    recap = {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
             for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", out, flags=re.M)}
    return result.returncode, out, recap


def changed_tasks(out: str) -> str:
    """The tasks that reported a change, with their task headers, for an idempotence failure message."""
    lines, task = [], ""
    for line in out.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:"):
            lines += [task, line]
    return "\n".join(lines)
