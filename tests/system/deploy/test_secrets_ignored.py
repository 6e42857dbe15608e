"""Secrets the quick starts make never land in git, nor in a Docker build context.

The steps of README.md, docs/container.md, docs/deployment.md, docs/security.md and
docs/remote-access.md that write keys, tokens and per-lab settings are run for real, in a
scratch git repository holding this checkout's .gitignore and .dockerignore and the tracked
files those steps start from. Afterwards `git add --all` must find nothing to add, and a build
with the image's .dockerignore must not see one of the files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO

TAGGERHUB = Path(sys.executable).parent / "taggerhub"
TRACKED = (".gitignore", ".dockerignore", "deploy/config/taggerhub.toml", "deploy/example.env",
           "ansible/inventory.example.yml")
# What the steps below must have made: if one is missing, a step did not run as the docs say.
SECRETS = (
    ".env",
    "inventory.yml",
    "deploy/config/users.toml",
    "deploy/config/pki/ca-key.pem",
    "deploy/config/pki/server-key.pem",
    "deploy/config/pki/alice-key.pem",
    "deploy/config/wireguard/wg0.conf",
    "deploy/config/ssh/authorized_keys",
    "ansible/tokens/alice.token",
    "ansible/tls-ca/ca-key.pem",
    "ansible/tls-ca/otto-key.pem",
    "ada.token",
)


def run(*args: str | Path, cwd: Path, stdin: str | None = None) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120,
                            input=stdin, env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd),
                                                     "DOCKER_BUILDKIT": "1"})
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def git(*args: str, cwd: Path) -> str:
    return run("git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args, cwd=cwd)


def quick_start_checkout(root: Path) -> Path:
    """A scratch repository with this checkout's ignore files, after every secret-making step."""
    root.mkdir()
    for name in TRACKED:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)
    git("init", "--quiet", cwd=root)
    git("add", "--all", cwd=root)
    git("commit", "--quiet", "-m", "tracked files", cwd=root)

    # docs/container.md: settings, then auth and TLS in the config directory.
    env = (root / "deploy/example.env").read_text() + "TAGGERHUB_MONITOR_TOKEN=health.secret\n"
    (root / ".env").write_text(env)
    config = root / "deploy/config"
    run(TAGGERHUB, "certs", "init", "pki", "--host", "lab-pc-3.lab.example.org", "--host", "127.0.0.1",
        "--client", "alice", cwd=config)
    run(TAGGERHUB, "user", "--users-file", "users.toml", "add", "--role", "admin", "alice", cwd=config)
    # docs/remote-access.md: WireGuard keys and SSH public keys in the config directory.
    run(TAGGERHUB, "vpn", "init", "--dir", config / "wireguard", "--endpoint", "vpn.lab.example.org:51820",
        cwd=root)
    run(TAGGERHUB, "vpn", "add-peer", "alice-laptop", "--dir", config / "wireguard", cwd=root)
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", root.parent / "alice-ssh", cwd=root)
    (config / "ssh").mkdir()
    (config / "ssh/authorized_keys").write_text((root.parent / "alice-ssh.pub").read_text())
    # docs/deployment.md: the inventory, and what the role keeps on the controller.
    shutil.copy(root / "ansible/inventory.example.yml", root / "inventory.yml")
    (root / "ansible/tokens").mkdir()
    (root / "ansible/tokens/alice.token").write_text("alice.secret\n")
    run(TAGGERHUB, "certs", "init", "ansible/tls-ca", "--host", "lab-pc-1", cwd=root)
    run(TAGGERHUB, "certs", "client", "ansible/tls-ca", "otto", cwd=root)
    # docs/security.md: a token kept in a file to pass on standard input.
    (root / "ada.token").write_text("ada.secret\n")

    missing = [name for name in SECRETS if not (root / name).is_file()]
    assert not missing, f"the quick-start steps did not make {missing}"
    return root


def test_every_file_the_quick_starts_make_is_ignored_by_git(tmp_path: Path) -> None:
    root = quick_start_checkout(tmp_path / "checkout")
    trackable = git("add", "--all", "--dry-run", cwd=root).splitlines()
    assert trackable == [], f"`git add --all` would publish: {trackable}"
    ignored = git("status", "--porcelain", "--ignored", "--untracked-files=all", cwd=root)
    assert {line[3:] for line in ignored.splitlines() if line.startswith("!! ")} >= set(SECRETS)


def test_the_check_catches_a_secret_the_ignore_file_lets_through(tmp_path: Path) -> None:
    """Without the secrets section of .gitignore, the same steps leave trackable keys: the test above can fail."""
    root = quick_start_checkout(tmp_path / "checkout")
    (root / ".gitignore").write_text((REPO / ".gitignore").read_text().split("# ---- Secrets")[0])
    trackable = git("add", "--all", "--dry-run", cwd=root)
    assert "deploy/config/pki/server-key.pem" in trackable and "add '.env'" in trackable


@pytest.mark.docker
def test_no_secret_reaches_the_image_build_context(tmp_path: Path) -> None:
    """BuildKit exports the context it received (`COPY . /` from scratch): none of the secrets are in it."""
    root = quick_start_checkout(tmp_path / "checkout")
    for name in ("pyproject.toml", "README.md", "deploy/supervisord.conf"):
        shutil.copy(REPO / name, root / name)
    dockerfile = tmp_path / "context.Dockerfile"
    dockerfile.write_text("FROM scratch\nCOPY . /\n")
    out = tmp_path / "context"
    run("docker", "build", "--quiet", "--file", dockerfile, "--output", f"type=local,dest={out}", ".", cwd=root)
    seen = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert "pyproject.toml" in seen and "deploy/supervisord.conf" in seen
    assert not seen & set(SECRETS), f"in the build context: {sorted(seen & set(SECRETS))}"
    assert not [name for name in seen if name.endswith(("-key.pem", ".token", ".env"))]
