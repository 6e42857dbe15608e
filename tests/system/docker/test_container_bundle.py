"""The offline bundle, as on an air-gapped lab PC: load without a registry, up, use, stop, down."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from taggerhub import client

from .containers import PREFIX, REPO, RUN_ID, ComposeProject, docker, free_port
from .test_container_monitoring import REGISTRY_WORDS, assert_scrapes_taggerhub

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def tiny_image(tag: str, tmp_path: Path) -> None:
    """An image of one file (a stand-in for a sidecar image passed with --also)."""
    (tmp_path / "sidecar").mkdir()
    (tmp_path / "sidecar" / "marker").write_text(tag)
    archive = tmp_path / "sidecar.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "sidecar" / "marker", arcname="marker")
    docker("import", str(archive), tag)


@pytest.fixture
def bundle(taggerhub_image: str, tmp_path: Path):
    """A bundle of the test image and a sidecar under tags of their own, then removed from the engine."""
    tag, sidecar = f"taggerhub-{PREFIX}-bundle:{RUN_ID}", f"taggerhub-{PREFIX}-sidecar:{RUN_ID}"
    docker("tag", taggerhub_image, tag)
    tiny_image(sidecar, tmp_path)
    image_id = docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    output = tmp_path / "taggerhub-bundle-test.tar"
    made = subprocess.run([str(REPO / "scripts/make-offline-bundle.sh"), "--image", tag, "--also", sidecar,
                           "--output", str(output)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(output)
    docker("image", "rm", tag, sidecar)
    try:
        yield output, tag, image_id, sidecar
    finally:
        docker("image", "rm", tag, sidecar, check=False)


def test_offline_bundle_loads_serves_stops_cleanly_and_leaves_nothing(bundle, tmp_path: Path):
    archive, tag, image_id, sidecar = bundle
    assert docker("image", "inspect", tag, check=False).returncode != 0
    assert docker("image", "inspect", sidecar, check=False).returncode != 0
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "lab-pc", filter="data")
    root = tmp_path / "lab-pc" / "taggerhub-bundle-test"

    # A bundle damaged on the way is refused before anything is loaded.
    config = root / "deploy/config/taggerhub.toml"
    original = config.read_text()
    config.write_text(original + "# changed\n")
    damaged = subprocess.run(["./load.sh"], cwd=root, capture_output=True, text=True, timeout=300)
    assert damaged.returncode != 0 and "the bundle is damaged" in damaged.stderr
    assert docker("image", "inspect", tag, check=False).returncode != 0
    config.write_text(original)

    loaded = subprocess.run(["./load.sh"], cwd=root, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    assert docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip() == image_id
    assert docker("image", "inspect", sidecar, check=False).returncode == 0
    shipped = {p.name for p in root.iterdir()}
    assert {"compose.yaml", "compose.hardware.yaml", "load.sh", ".env", "SHA256SUMS", "deploy"} <= shipped

    # The operator's only edit: ports, in the bundle's .env.
    rpc_port, metrics_port = free_port(), free_port()
    env_file = root / ".env"
    env_file.write_text(f"{env_file.read_text()}TAGGERHUB_RPC_PORT={rpc_port}\nTAGGERHUB_METRICS_PORT={metrics_port}\n")
    project = ComposeProject(f"{PREFIX}-bundle-{RUN_ID}", [root / "compose.yaml"], env_file, rpc_port, metrics_port)
    try:
        # What docs/container.md says to type: no --no-build, no --pull never (pull_policy: never).
        up = project.compose("up", "--detach", "--wait", "--wait-timeout", "120")
        assert not [w for w in (*REGISTRY_WORDS, "Building") if w in up.stdout + up.stderr], up.stderr
        assert project.health() == "healthy"

        TT = client.createProxy(host="127.0.0.1", port=rpc_port)
        tagger = TT.createTimeTagger()
        rate = TT.Countrate(tagger, [1])
        rate.startFor(int(0.1e12))
        rate.waitUntilFinished()

        # `docker stop`: SIGTERM reaches the server through supervisord; it frees the device and exits.
        container = project.container_id()
        started = time.monotonic()
        project.compose("stop", "--timeout", "30")
        assert time.monotonic() - started < 25  # well within the grace period: nothing was killed
        state = json.loads(docker("inspect", "--format", "{{json .State}}", container).stdout)
        assert state["ExitCode"] == 0 and not state["OOMKilled"]
        log = project.compose("logs", "--no-log-prefix", "--no-color").stdout
        events = [json.loads(line[line.index("{"):]) for line in log.splitlines() if "{" in line]
        names = [e["event"] for e in events if e["logger"] == "taggerhub.server"]
        assert "stopping" in names
        assert names.index("device freed", names.index("stopping")) < names.index("stopped", names.index("stopping"))
        assert "SIGKILL" not in log
        assert "stopped: server (exit status 0)" in log
    finally:
        project.compose("down", "--volumes", "--timeout", "30", check=False)
    assert project.leftovers() == {"containers": [], "volumes": [], "networks": []}


def test_offline_bundle_carries_prometheus_and_its_monitoring_profile_starts_without_a_registry(
        taggerhub_image: str, docker_base_image: str, tmp_path: Path):
    """--with-monitoring --no-grafana builds Debian's Prometheus and ships it; on the lab PC the profile runs."""
    tag, prometheus = f"taggerhub-{PREFIX}-mbundle:{RUN_ID}", f"taggerhub-{PREFIX}-mbundle-prometheus:{RUN_ID}"
    docker("tag", taggerhub_image, tag)
    output = tmp_path / "taggerhub-bundle-mon.tar"
    env = {**os.environ, "TAGGERHUB_PROMETHEUS_IMAGE": prometheus, "TAGGERHUB_BASE_IMAGE": docker_base_image}
    try:
        made = subprocess.run([str(REPO / "scripts/make-offline-bundle.sh"), "--image", tag, "--with-monitoring",
                               "--no-grafana", "--output", str(output)],
                              capture_output=True, text=True, timeout=600, env=env)
        assert made.returncode == 0, made.stderr
        assert f"building {prometheus}" in made.stderr  # it was missing: built from monitoring/container
        docker("image", "rm", tag, prometheus)
        with tarfile.open(output) as tar:
            assert f"{output.stem}/images/monitoring.tar.gz" in tar.getnames()
            tar.extractall(tmp_path / "lab-pc", filter="data")
        root = tmp_path / "lab-pc" / output.stem
        loaded = subprocess.run(["./load.sh"], cwd=root, capture_output=True, text=True, timeout=300)
        assert loaded.returncode == 0, loaded.stderr
        assert docker("image", "inspect", prometheus, check=False).returncode == 0

        prometheus_port = free_port()
        env_file = root / ".env"
        env_file.write_text(f"{env_file.read_text()}TAGGERHUB_RPC_PORT={free_port()}\n"
                            f"TAGGERHUB_METRICS_PORT={free_port()}\nTAGGERHUB_PROMETHEUS_PORT={prometheus_port}\n")
        project = ComposeProject(f"{PREFIX}-mbundle-{RUN_ID}", [root / "compose.yaml"], env_file, 0, 0)
        try:
            # As docs/container.md says for a bundle without Grafana; no --no-build, no --pull never.
            up = project.compose("--profile", "monitoring", "up", "--detach", "--wait", "--wait-timeout", "180",
                                 "taggerhub", "prometheus", timeout_s=300)
            said = up.stdout + up.stderr
            assert not [w for w in (*REGISTRY_WORDS, "Building", "naming to") if w in said], said
            assert_scrapes_taggerhub(prometheus_port)
            # Stop and remove everything, whichever profiles were up (docs/container.md, Day to day).
            project.compose("--profile", "*", "down", "--timeout", "10")
            left = project.leftovers()
            assert left["containers"] == [] and left["networks"] == [], left
        finally:
            project.compose("--profile", "*", "down", "--volumes", "--timeout", "10", check=False)
        assert project.leftovers() == {"containers": [], "volumes": [], "networks": []}
    finally:
        docker("image", "rm", tag, prometheus, check=False)


def test_bundle_shows_progress_on_a_terminal_and_plain_lines_otherwise(tmp_path: Path):
    """Saving a large image takes minutes: on a terminal pv draws a bar; in a log, one line per archive."""
    tag = f"taggerhub-{PREFIX}-progress:{RUN_ID}"
    tiny_image(tag, tmp_path)
    try:
        command = [str(REPO / "scripts/make-offline-bundle.sh"), "--image", tag]
        on_terminal = subprocess.run(  # script(1) gives the bundle a pseudo-terminal, as an admin's shell would
            ["script", "--quiet", "--return", "--command",
             " ".join([*command, "--output", str(tmp_path / "tty.tar")]), "/dev/null"],
            capture_output=True, text=True, timeout=300)
        assert on_terminal.returncode == 0, on_terminal.stdout
        # pv's line: the archive's name, bytes so far, elapsed time, rate and a bar.
        bar = r"taggerhub: +[\d.]+[KMG]?i?B \d+:\d\d:\d\d \[.*\] \[=*"
        assert re.search(bar, on_terminal.stdout), on_terminal.stdout
        in_a_log = subprocess.run([*command, "--output", str(tmp_path / "log.tar")],
                                  capture_output=True, text=True, timeout=300)
        assert in_a_log.returncode == 0, in_a_log.stderr
        assert f"saving {tag} (0 MB before compression)" in in_a_log.stderr
        assert "%" not in in_a_log.stderr and "\r" not in in_a_log.stderr
    finally:
        docker("image", "rm", tag, check=False)
