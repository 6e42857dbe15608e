"""One source per config: systemd/, monitoring/prometheus/prometheus.yml and the compose profile's
Grafana data source are generated (scripts/render_configs.py) and must not drift from their sources."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import REPO

SCRIPT = REPO / "scripts" / "render_configs.py"

pytestmark = pytest.mark.slow  # renders with ansible-playbook


def render_configs(*args: str, root: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=300)


def scratch_checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for folder in ("ansible", "systemd", "monitoring", "deploy/monitoring"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def test_every_derived_file_is_what_its_source_renders_to() -> None:
    result = render_configs("--check")
    assert result.returncode == 0, result.stderr


def test_a_hand_edit_of_a_derived_file_is_caught_and_rendering_repairs_it(tmp_path: Path) -> None:
    root = scratch_checkout(tmp_path)
    unit = root / "systemd/taggerhub-native.service"
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=full"))
    datasource = root / "deploy/monitoring/grafana/provisioning/datasources/prometheus.yml"
    datasource.write_text(datasource.read_text().replace("      timeInterval: 15s", "      timeInterval: 30s"))
    (root / "monitoring/prometheus/prometheus.yml").unlink()
    drifted = render_configs("--check", root=root)
    assert drifted.returncode == 1
    for name in ("systemd/taggerhub-native.service", "monitoring/prometheus/prometheus.yml",
                 "deploy/monitoring/grafana/provisioning/datasources/prometheus.yml"):
        assert name in drifted.stderr
    assert "ProtectSystem=full" in unit.read_text()  # --check writes nothing
    assert render_configs(root=root).returncode == 0
    assert render_configs("--check", root=root).returncode == 0
    assert unit.read_text() == (REPO / "systemd/taggerhub-native.service").read_text()


def test_an_edit_of_a_source_reaches_its_derived_file(tmp_path: Path) -> None:
    root = scratch_checkout(tmp_path)
    defaults = root / "ansible/roles/taggerhub/defaults/main.yml"
    defaults.write_text(defaults.read_text().replace("taggerhub_monitoring_scrape_interval: 15s",
                                                     "taggerhub_monitoring_scrape_interval: 20s"))
    # Grafana's timeInterval must follow Prometheus' scrape interval: refused until it does.
    refused = render_configs(root=root)
    assert refused.returncode != 0 and "timeInterval" in refused.stderr
    source = root / "monitoring/grafana/provisioning/datasources/prometheus.yml"
    source.write_text(source.read_text().replace("timeInterval: 15s", "timeInterval: 20s"))
    assert render_configs(root=root).returncode == 0
    config = yaml.safe_load((root / "monitoring/prometheus/prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "20s"
    compose = yaml.safe_load((root / "deploy/monitoring/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert compose["datasources"][0]["jsonData"]["timeInterval"] == "20s"


def test_the_two_grafana_data_sources_differ_only_in_the_url_and_one_dashboard_provider_serves_both() -> None:
    hand = yaml.safe_load((REPO / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text())
    compose = yaml.safe_load(
        (REPO / "deploy/monitoring/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert hand["datasources"][0].pop("url") == "http://localhost:9090"
    assert compose["datasources"][0].pop("url") == "http://prometheus:9090"
    assert hand == compose
    assert not (REPO / "deploy/monitoring/grafana/provisioning/dashboards").exists()
    [provider] = yaml.safe_load((REPO / "monitoring/grafana/provisioning/dashboards/taggerhub.yml").read_text())[
        "providers"]
    assert provider["folder"] == "Time Tagger"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/taggerhub"
