"""The role's live-lab-page options: the [web] settings, the unit, the firewall port and compose's web profile."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from test_monitoring_targets import run_role_checks
from test_units import REPO, SYSTEMD, render

from taggerhub.config import load_settings

pytestmark = pytest.mark.slow

WEB = {"taggerhub_web_enabled": True}


def test_native_mode_writes_the_web_section_the_page_runs_with_and_opens_its_port(tmp_path: Path) -> None:
    render(tmp_path, ["taggerhub.toml", "taggerhub.nft", "taggerhub-web.service"], **WEB, taggerhub_mode="native",
           taggerhub_listen_host="192.0.2.7", taggerhub_web_listen="0.0.0.0:8443")
    web = tomllib.loads((tmp_path / "taggerhub.toml").read_text())["web"]
    assert web == {"listen": "0.0.0.0:8443", "server": "192.0.2.7:23000", "cert_file": "/etc/taggerhub/tls/server.pem",
                   "key_file": "/etc/taggerhub/tls/server-key.pem", "insecure": False,
                   "tls_ca": "/etc/taggerhub/tls/ca.pem"}
    assert load_settings(tmp_path / "taggerhub.toml", env={}).web.cert_file == web["cert_file"]  # the page reads it
    assert "tcp dport { 23000, 9234, 8443 }" in (tmp_path / "taggerhub.nft").read_text()
    unit = (tmp_path / "taggerhub-web.service").read_text()
    assert "ExecStart=/opt/taggerhub/venv/bin/taggerhub web\n" in unit
    assert unit.split("\n", 1)[1] == (SYSTEMD / "taggerhub-web.service").read_text().split("\n", 2)[2]


def test_the_page_is_off_by_default(tmp_path: Path) -> None:
    render(tmp_path, ["taggerhub.toml", "taggerhub.nft", "compose.env"])
    assert "web" not in tomllib.loads((tmp_path / "taggerhub.toml").read_text())
    assert "8023" not in (tmp_path / "taggerhub.nft").read_text()
    assert "TAGGERHUB_WEB" not in (tmp_path / "compose.env").read_text()


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI (compose config)")
def test_docker_mode_turns_on_compose_web_profile_with_the_servers_certificate(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    render(tmp_path, ["compose.env", "compose.override.yaml"], **WEB, taggerhub_mode="docker",
           taggerhub_backend="simulator", taggerhub_listen_host="192.0.2.7", taggerhub_config_dir=str(etc),
           taggerhub_compose_profiles=["monitoring"])
    (tmp_path / "compose.env").rename(tmp_path / ".env")
    shutil.copy(REPO / "compose.yaml", tmp_path / "compose.yaml")
    result = subprocess.run(["docker", "compose", "-f", "compose.yaml", "-f", "compose.override.yaml", "config",
                             "--format", "json"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    project = json.loads(result.stdout)
    assert {"taggerhub", "web", "prometheus", "grafana"} <= set(project["services"])  # profiles web and monitoring
    web = project["services"]["web"]
    assert web["command"] == ["taggerhub", "web"] and web["environment"]["TAGGERHUB_WEB_SERVER"] == "taggerhub:23000"
    assert (web["environment"]["TAGGERHUB_WEB_CERT_FILE"], web["environment"]["TAGGERHUB_WEB_KEY_FILE"]) == \
        ("/etc/taggerhub/tls/server.pem", "/etc/taggerhub/tls/server-key.pem")
    assert web["environment"]["TAGGERHUB_WEB_INSECURE"] == "false"  # auth and TLS on: HTTPS only
    assert {(p["host_ip"], p["published"], p["target"]) for p in web["ports"]} == {("192.0.2.7", "8023", 8023)}
    assert "23000" in [str(g) for g in web["group_add"]]  # reads the settings files, root:taggerhub 0640


@pytest.mark.parametrize(("extra", "ok"), [
    ({}, True),  # TLS on: the server's certificate
    ({"taggerhub_tls_enabled": False, "taggerhub_insecure": True}, True),
    ({"taggerhub_tls_enabled": False, "taggerhub_listen_host": "127.0.0.1", "taggerhub_mode": "native"},
     False),  # the page beyond loopback in clear
    ({"taggerhub_tls_enabled": False, "taggerhub_listen_host": "127.0.0.1", "taggerhub_mode": "native",
      "taggerhub_web_listen": "127.0.0.1:8023"}, True),
    ({"taggerhub_tls_enabled": False, "taggerhub_listen_host": "127.0.0.1"}, True),  # docker: published on loopback
    ({"taggerhub_web_listen": "0.0.0.0:9234"}, False),  # the metrics port
    ({"taggerhub_web_cert": "/srv/page.pem", "taggerhub_web_key": "/srv/page-key.pem"}, False),  # docker: not mounted
    ({"taggerhub_web_cert": "/srv/page.pem", "taggerhub_web_key": "/srv/page-key.pem", "taggerhub_mode": "native"},
     True),
    ({"taggerhub_web_cert": "/etc/taggerhub/page.pem"}, False),  # no key
])
def test_role_checks_the_page_settings(tmp_path: Path, extra: dict, ok: bool) -> None:
    result = run_role_checks(tmp_path, {**WEB, **extra})
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    if not ok:
        assert "taggerhub_web_listen must be HOST:PORT" in result.stdout, result.stdout
