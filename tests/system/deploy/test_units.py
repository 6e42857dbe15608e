"""systemd units, udev rules and the Ansible role pass their linters and agree with each other."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import helpers

REPO = Path(__file__).resolve().parents[3]
SYSTEMD = REPO / "systemd"
ANSIBLE = REPO / "ansible"
ROLE = ANSIBLE / "roles" / "taggerhub"
VENV_BIN = Path(sys.executable).parent
UNITS = ("taggerhub.service", "taggerhub-native.service", "taggerhub-exporter.service", "taggerhub-web.service")

needs_systemd_analyze = pytest.mark.needs("systemd-analyze")


def verify(unit_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", *(str(unit_dir / u) for u in UNITS)],
                          capture_output=True, text=True, timeout=60)


@needs_systemd_analyze
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # The native units name /opt/taggerhub/venv/bin/taggerhub, which verify wants to exist:
    # point them at this checkout's virtualenv; everything else is checked as shipped.
    helpers.require_commands("docker")  # taggerhub.service runs /usr/bin/docker, which verify wants to exist
    for unit in UNITS:
        text = (SYSTEMD / unit).read_text().replace("/opt/taggerhub/venv/bin", str(VENV_BIN))
        (tmp_path / unit).write_text(text)
    result = verify(tmp_path)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


@needs_systemd_analyze
def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    for unit in UNITS:
        text = (SYSTEMD / unit).read_text().replace("/opt/taggerhub/venv/bin", str(VENV_BIN))
        (tmp_path / unit).write_text(text)
    native = tmp_path / "taggerhub-native.service"
    native.write_text(native.read_text().replace("ProtectSystem=strict", "ProtectSystem=very"))
    assert "protect system value" in verify(tmp_path).stderr


def test_native_unit_is_hardened_and_limited_to_usb_devices() -> None:
    text = (SYSTEMD / "taggerhub-native.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, flags=re.M))
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["PrivateTmp"] == "yes"
    assert settings["DevicePolicy"] == "closed"
    assert re.findall(r"^DeviceAllow=(.*)$", text, flags=re.M) == ["char-usb_device rw"]
    assert settings["User"] == "taggerhub" and settings["StateDirectory"] == "taggerhub"
    assert settings["CapabilityBoundingSet"] == ""


def test_udev_rules_match_only_the_time_tagger_vendor() -> None:
    rules = [line for line in (SYSTEMD / "99-timetagger.rules").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules, "no rule in 99-timetagger.rules"
    for rule in rules:
        assert 'ATTR{idVendor}=="151f"' in rule
        assert 'GROUP="taggerhub"' in rule and 'MODE="0660"' in rule
        assert 'SUBSYSTEM=="usb"' in rule


def render(tmp_path: Path, templates: list[str], **variables: object) -> None:
    """Render role templates with the role's defaults (and the given variables) into tmp_path."""
    playbook = tmp_path / "render.yml"
    playbook.write_text(json.dumps([{
        "name": "Render role templates with the role's defaults.",
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": [{"name": "Render each template.", "loop": templates, "ansible.builtin.template": {
            "src": f"{ROLE}/templates/{{{{ item }}}}.j2", "dest": f"{tmp_path}/{{{{ item }}}}", "mode": "0644"}}],
    }]))
    # The exporter scraper's credential, which the role's config.yml makes once on the controller (beside the play).
    (tmp_path / "tokens").mkdir(exist_ok=True)
    (tmp_path / "tokens" / "scraper-prometheus.token").write_text("prometheus." + "ab" * 32)
    # Extra vars: above the defaults, which the play loads as vars_files.
    (tmp_path / "extra.json").write_text(json.dumps(variables))
    result = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"@{tmp_path}/extra.json",
                             str(playbook)],
                            capture_output=True, text=True, timeout=120,
                            env={"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "PATH": f"{VENV_BIN}:/usr/bin:/bin",
                                 "ANSIBLE_LOCALHOST_WARNING": "false", "HOME": str(Path.home())})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_role_templates_render_the_shipped_units_and_rules(tmp_path: Path) -> None:
    """The role's templates with their defaults give exactly the files in systemd/ (their source)."""
    render(tmp_path, [*UNITS, "99-timetagger.rules"])
    for name in (*UNITS, "99-timetagger.rules"):
        rendered = (tmp_path / name).read_text().split("\n", 1)[1]  # drop the ansible_managed line
        shipped = (SYSTEMD / name).read_text().split("\n", 2)  # two lines: generated by scripts/render_configs.py
        assert shipped[0] == f"# Generated from ansible/roles/taggerhub/templates/{name}.j2", name
        assert rendered == shipped[2], f"role template {name}.j2 drifted from systemd/{name}"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["simulator", "hardware"])
def test_docker_mode_files_make_a_valid_compose_project(tmp_path: Path, backend: str) -> None:
    """The .env and override the role writes, with the repository's compose files, configure the service."""
    helpers.require_commands("docker")
    render(tmp_path, ["compose.env", "compose.override.yaml"], taggerhub_mode="docker", taggerhub_backend=backend,
           taggerhub_listen_host="192.0.2.7", taggerhub_rpc_port=23005, taggerhub_config_dir=str(tmp_path / "etc"))
    (tmp_path / "compose.env").rename(tmp_path / ".env")
    for name in ("compose.yaml", "compose.hardware.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    result = subprocess.run(["docker", "compose", "config", "--format", "json"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    service = json.loads(result.stdout)["services"]["taggerhub"]
    assert service["image"] == "taggerhub:0.1.0"
    assert {(p["host_ip"], p["published"], p["target"]) for p in service["ports"]} >= {("192.0.2.7", "23005", 23005)}
    assert "23000" in [str(g) for g in service.get("group_add", [])]
    assert service["environment"]["TAGGERHUB_CONFIG"] == "/etc/taggerhub/taggerhub.toml"
    assert service["environment"]["TAGGERHUB_SERVER_INSECURE"] == "false"
    mounts = {v["target"]: v["source"] for v in service["volumes"]}
    assert mounts["/etc/taggerhub"] == str(tmp_path / "etc")
    assert ("/dev/bus/usb" in mounts) == (backend == "hardware")


@pytest.mark.slow
def test_ansible_lint_passes_on_the_production_profile() -> None:
    lint = VENV_BIN / "ansible-lint"
    result = subprocess.run([str(lint), "--offline"], cwd=ANSIBLE, capture_output=True, text=True, timeout=300,
                            env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(Path.home()), "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr
