"""Docker tests leave nothing behind: the sshd lab removes its anonymous volume, kept images can be pruned."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from .containers import PREFIX, REPO, RUN_ID, docker

pytestmark = pytest.mark.docker


def load_netlab():
    """tests/system/remote_access/netlab.py, the sshd and WireGuard test lab (a module of another test folder)."""
    spec = importlib.util.spec_from_file_location("netlab", REPO / "tests/system/remote_access/netlab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sshd_lab_container_takes_its_anonymous_volume_with_it(docker_base_image: str) -> None:
    image = f"taggerhub-{PREFIX}-sshd:{RUN_ID}"
    docker("build", "--quiet", "--build-arg", f"BASE_IMAGE={docker_base_image}", "--tag", image, str(REPO / "sshd"),
           timeout_s=600)
    try:
        container = load_netlab().Container(f"{PREFIX}-sshd-{RUN_ID}", image)
        mounts = docker("inspect", "--format", "{{json .Mounts}}", container.name).stdout
        volume = next(m["Name"] for m in json.loads(mounts) if m["Destination"] == "/etc/ssh/host_keys")
        assert docker("volume", "inspect", volume, check=False).returncode == 0
        container.close()
        assert docker("volume", "inspect", volume, check=False).returncode != 0, f"volume {volume} left behind"
    finally:
        docker("rm", "--force", "--volumes", f"{PREFIX}-sshd-{RUN_ID}", check=False)
        docker("image", "rm", image, check=False)


def test_prune_script_lists_then_removes_kept_test_images(tmp_path: Path) -> None:
    image = f"{PREFIX}-prunecheck-{RUN_ID}:test"
    (tmp_path / "marker").write_text(image)
    with tarfile.open(tmp_path / "one.tar", "w") as tar:
        tar.add(tmp_path / "marker", arcname="marker")
    docker("import", str(tmp_path / "one.tar"), image)
    script = str(REPO / "scripts/prune-test-images.sh")
    try:
        listed = subprocess.run([script, image], capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.splitlines() == [f"image {image}"]
        assert docker("image", "inspect", image, check=False).returncode == 0  # listing removes nothing
        removed = subprocess.run([script, "--yes", image], capture_output=True, text=True, timeout=60)
        assert removed.returncode == 0, removed.stderr
        assert docker("image", "inspect", image, check=False).returncode != 0
    finally:
        docker("image", "rm", image, check=False)
