"""What compose makes of compose.yaml, its hardware overlay and its profiles (`docker compose config`)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from helpers import require_commands

from .containers import REPO

pytestmark = pytest.mark.docker


def rendered(*args: str, env: dict[str, str] | None = None) -> dict:
    """compose's own view of the files: interpolated, merged, validated against the spec."""
    require_commands("docker")
    result = subprocess.run(
        ["docker", "compose", "--project-directory", str(REPO), *args, "config", "--format", "json"],
        capture_output=True, text=True, timeout=60,
        # A clean slate: only the variables a test sets, as on a lab PC without .env.
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **(env or {})},
    )
    assert "is not a docker command" not in result.stderr, "no docker compose plugin (`bash .ci/run` installs it)"
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_default_is_the_simulator_published_on_loopback_with_state_on_a_named_volume():
    service = rendered("-f", "compose.yaml")["services"]["taggerhub"]
    assert "TAGGERHUB_SERVER_BACKEND" not in service["environment"]
    assert {(p["host_ip"], p["published"], p["target"]) for p in service["ports"]} == {
        ("127.0.0.1", "23000", 23000), ("127.0.0.1", "9234", 9234),
    }
    assert service["restart"] == "unless-stopped"
    assert "taggerhub status" in " ".join(service["healthcheck"]["test"])
    mounts = {m["target"]: m for m in service["volumes"]}
    assert mounts["/var/lib/taggerhub"]["type"] == "volume"
    assert mounts["/etc/taggerhub"]["read_only"] is True
    assert "devices" not in service and "device_cgroup_rules" not in service


def test_bind_address_and_ports_come_from_the_operator_and_the_rpc_port_matches_inside():
    env = {"TAGGERHUB_BIND": "192.0.2.7", "TAGGERHUB_RPC_PORT": "24000", "TAGGERHUB_METRICS_PORT": "9300"}
    service = rendered("-f", "compose.yaml", env=env)["services"]["taggerhub"]
    assert {(p["host_ip"], p["published"], p["target"]) for p in service["ports"]} == {
        ("192.0.2.7", "24000", 24000), ("192.0.2.7", "9300", 9234),
    }
    assert service["environment"]["TAGGERHUB_SERVER_PORT"] == "24000"
    # Clients are told to come back to the address the port is published on.
    assert service["environment"]["TAGGERHUB_SERVER_ADVERTISE_HOST"] == "192.0.2.7"


def test_hardware_overlay_passes_the_usb_bus_through_and_selects_the_vendor_library():
    service = rendered("-f", "compose.yaml", "-f", "compose.hardware.yaml",
                       env={"TAGGERHUB_USB_GID": "85"})["services"]["taggerhub"]
    assert service["environment"]["TAGGERHUB_SERVER_BACKEND"] == "hardware"
    assert service["device_cgroup_rules"] == ["c 189:* rmw"]
    assert service["group_add"] == ["85"]
    usb = next(m for m in service["volumes"] if m["target"] == "/dev/bus/usb")
    assert usb["source"] == "/dev/bus/usb" and not usb.get("bind", {}).get("create_host_path", False)


def test_monitoring_profile_adds_prometheus_and_grafana_only_when_asked():
    assert set(rendered("-f", "compose.yaml")["services"]) == {"taggerhub"}
    services = rendered("-f", "compose.yaml", "--profile", "monitoring")["services"]
    assert set(services) == {"taggerhub", "prometheus", "grafana"}
    prometheus_mounts = {m["target"]: m["source"] for m in services["prometheus"]["volumes"]}
    assert prometheus_mounts["/etc/prometheus/targets"].endswith("deploy/monitoring/targets")
    grafana_mounts = {m["target"]: m.get("source", "") for m in services["grafana"]["volumes"]}
    # One provider file for compose and a hand-made Grafana: the path it names is where the dashboards are.
    assert grafana_mounts["/etc/grafana/provisioning/dashboards"].endswith("monitoring/grafana/provisioning/dashboards")
    assert grafana_mounts["/var/lib/grafana/dashboards/taggerhub"].endswith("monitoring/grafana/dashboards")
    assert grafana_mounts["/etc/grafana/provisioning/datasources"].endswith(
        "deploy/monitoring/grafana/provisioning/datasources")
    for name in ("prometheus", "grafana"):
        assert all(p["host_ip"] == "127.0.0.1" for p in services[name]["ports"])


@pytest.mark.needs("promtool")
def test_prometheus_of_the_monitoring_profile_accepts_its_config_and_targets(tmp_path):
    # The same files the profile mounts, in the same places relative to each other.
    root = tmp_path / "prometheus"
    shutil.copytree(REPO / "monitoring/prometheus", root)
    shutil.rmtree(root / "targets")
    shutil.copytree(REPO / "deploy/monitoring/targets", root / "targets")
    # compose.yaml's default scraper credential: an empty file (an exporter without scrapers ignores it).
    shutil.copy(REPO / "deploy/monitoring/no-scraper-token", root / "taggerhub-scraper.token")
    result = subprocess.run(["promtool", "check", "config", str(root / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_image_this_checkout_builds_is_ever_pulled():
    """pull_policy never on every service whose image is built here: offline PCs see no registry warning."""
    services = rendered("-f", "compose.yaml", "-f", "compose.ssh.yaml", "--profile", "*")["services"]
    services |= rendered("-f", "compose.yaml", "-f", "compose.vpn.yaml", "--profile", "*")["services"]
    built = {name for name, service in services.items() if "build" in service}
    assert built == {"taggerhub", "prometheus", "sshd", "wireguard"}
    assert {name: services[name].get("pull_policy") for name in built} == dict.fromkeys(built, "never")
    assert services["nameserver"]["pull_policy"] == "never"  # the taggerhub image, built or loaded
    prometheus = services["prometheus"]
    assert prometheus["image"] == "taggerhub-prometheus:latest"
    assert (REPO / prometheus["build"]["context"] / prometheus["build"]["dockerfile"]).is_file()
