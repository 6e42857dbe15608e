"""The monitoring profile on a real engine, with no registry: Prometheus built from this checkout
(Debian's package on the taggerhub base, monitoring/container/prometheus.Dockerfile) scrapes the
taggerhub service by name; `docker compose down` then removes it and the network.

Grafana needs a registry (Debian does not package it) and is not started here.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .containers import PREFIX, REPO, RUN_ID, ComposeProject, docker, free_port, wait_until, write_env_file

pytestmark = [pytest.mark.docker, pytest.mark.slow]
# What compose prints when it reaches for a registry (pull_policy not honoured).
REGISTRY_WORDS = ("Pulling", "pull access denied", "registry-1.docker.io", "Error response from daemon")


def query(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]


def assert_scrapes_taggerhub(prometheus_port: int) -> None:
    def scraped() -> list:
        result = query(prometheus_port, "/api/v1/query", query="taggerhub_up")["result"]
        return result if result and result[0]["value"][1] == "1" else []

    # Scrapes every 15 s (monitoring/prometheus/prometheus.yml): allow a few.
    [sample] = wait_until(scraped, timeout_s=90, pause_s=1, what="Prometheus seeing taggerhub_up 1")
    assert sample["metric"]["instance"] == "taggerhub:9234"
    assert sample["metric"]["lab"] == "compose"
    groups = query(prometheus_port, "/api/v1/rules")["groups"]
    alerts = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"TaggerhubExporterDown", "TaggerhubTaggerDown"} <= alerts


def test_monitoring_profile_builds_prometheus_offline_scrapes_and_down_removes_it(
        taggerhub_image: str, docker_base_image: str, tmp_path: Path):
    prometheus_image = f"taggerhub-{PREFIX}-prometheus:{RUN_ID}"
    assert docker("image", "inspect", prometheus_image, check=False).returncode != 0
    prometheus_port = free_port()
    # As docs/container.md says: the profile in .env, so that plain `up` and `down` include it.
    env = write_env_file(tmp_path / "test.env", taggerhub_image, free_port(), free_port(),
                         extra=f"COMPOSE_PROFILES=monitoring\nTAGGERHUB_BASE_IMAGE={docker_base_image}\n"
                               f"TAGGERHUB_PROMETHEUS_IMAGE={prometheus_image}\n"
                               f"TAGGERHUB_PROMETHEUS_PORT={prometheus_port}\n")
    project = ComposeProject(f"{PREFIX}-monitoring-{RUN_ID}", [REPO / "compose.yaml"], env, 0, 0)
    try:
        # No --no-build, no --pull never: what an operator types. The missing Prometheus image
        # is built, nothing is pulled (pull_policy: never).
        up = project.compose("up", "--detach", "--wait", "--wait-timeout", "300", "taggerhub", "prometheus",
                             timeout_s=600)
        said = up.stdout + up.stderr
        assert not [w for w in REGISTRY_WORDS if w in said], said
        labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", prometheus_image).stdout)
        assert labels["org.opencontainers.image.title"] == "taggerhub-prometheus"
        version = docker("run", "--rm", "--entrypoint", "promtool", prometheus_image, "--version").stdout
        assert "promtool, version 2." in version
        assert_scrapes_taggerhub(prometheus_port)

        # `docker compose down` (docs/container.md, Day to day): containers and network go, state stays.
        project.compose("down", "--timeout", "10")
        left = project.leftovers()
        assert left["containers"] == [] and left["networks"] == [], left
        volumes = {docker("volume", "inspect", "--format", "{{index .Labels \"com.docker.compose.volume\"}}", v)
                   .stdout.strip() for v in left["volumes"]}
        # compose makes every volume of the active profiles, Grafana's too (unused here).
        assert {"state", "prometheus"} <= volumes <= {"state", "prometheus", "grafana"}
        project.compose("down", "--volumes", "--timeout", "10")
    finally:
        project.compose("--profile", "*", "down", "--volumes", "--timeout", "10", check=False)
        docker("image", "rm", prometheus_image, check=False)
    assert project.leftovers() == {"containers": [], "volumes": [], "networks": []}
