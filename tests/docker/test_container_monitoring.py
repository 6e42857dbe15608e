"""The monitoring profile on a real engine: Prometheus scrapes the taggerhub service by name.

No registry can be reached here, so prom/prometheus is replaced by Debian's Prometheus in an
image of the same layout (tests/docker/prometheus); compose.yaml, its mounts and the
monitoring/ files are used unchanged. Grafana has no such stand-in and is not started.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .containers import PREFIX, REPO, RUN_ID, ComposeProject, docker, free_port, wait_until, write_env_file

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def prometheus_image(docker_base_image: str) -> str:
    tag = f"taggerhub-{PREFIX}-prometheus:{RUN_ID}"
    docker("build", "--quiet", "--build-arg", f"BASE_IMAGE={docker_base_image}", "--tag", tag,
           str(Path(__file__).parent / "prometheus"), timeout_s=600)
    yield tag
    docker("image", "rm", tag, check=False)


def query(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]


def test_monitoring_profile_scrapes_the_service_and_loads_the_alert_rules(
        taggerhub_image: str, prometheus_image: str, tmp_path: Path):
    prometheus_port = free_port()
    env = write_env_file(tmp_path / "test.env", taggerhub_image, free_port(), free_port(),
                         extra=f"TAGGERHUB_PROMETHEUS_IMAGE={prometheus_image}\n"
                               f"TAGGERHUB_PROMETHEUS_PORT={prometheus_port}\n")
    project = ComposeProject(f"{PREFIX}-monitoring-{RUN_ID}", [REPO / "compose.yaml"], env, 0, 0)
    try:
        project.compose("--profile", "monitoring", "up", "--detach", "--wait", "--wait-timeout", "120",
                        "--no-build", "--pull", "never", "taggerhub", "prometheus")

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
    finally:
        project.compose("--profile", "monitoring", "down", "--volumes", "--timeout", "10", check=False)
    assert project.leftovers() == {"containers": [], "volumes": [], "networks": []}
