"""The Ansible role's discovery parts: the name server unit it installs and the [discovery] it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, require_files
from taggerhub.config import load_settings

ANSIBLE = REPO / "ansible"
ROLE = ANSIBLE / "roles" / "taggerhub"
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _ansible_playbook() -> None:
    require_files(VENV_BIN / "ansible-playbook")  # installed with '.[test]'


def render(tmp_path: Path, templates: list[str], **variables: object) -> None:
    playbook = tmp_path / "render.yml"
    playbook.write_text(json.dumps([{
        "name": "Render role templates.", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": [{"name": "Render each template.", "loop": templates, "ansible.builtin.template": {
            "src": f"{ROLE}/templates/{{{{ item }}}}.j2", "dest": f"{tmp_path}/{{{{ item }}}}", "mode": "0644"}}],
    }]))
    (tmp_path / "extra.json").write_text(json.dumps(variables))
    result = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"@{tmp_path}/extra.json",
                             str(playbook)], capture_output=True, text=True, timeout=120,
                            env={"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "PATH": f"{VENV_BIN}:/usr/bin:/bin",
                                 "ANSIBLE_LOCALHOST_WARNING": "false", "HOME": str(Path.home())})
    assert result.returncode == 0, result.stdout + result.stderr


def test_role_renders_the_shipped_name_server_unit_and_the_discovery_settings(tmp_path: Path) -> None:
    render(tmp_path, ["taggerhub-nameserver.service", "taggerhub.toml"], taggerhub_nameserver_host="monitor1",
           taggerhub_nameserver_address="10.0.0.5", taggerhub_nameserver_port=9190,
           taggerhub_tagger_aliases=["lab2-ultra=2138000SIM"])
    unit = (tmp_path / "taggerhub-nameserver.service").read_text().split("\n", 1)[1]
    shipped = (REPO / "systemd" / "taggerhub-nameserver.service").read_text()
    if shipped.startswith("# Generated from"):  # scripts/render_configs.py's two-line header
        shipped = shipped.split("\n", 2)[2]
    assert unit == shipped
    discovery = load_settings(tmp_path / "taggerhub.toml", env={}).discovery
    assert (discovery.enabled, discovery.ns_host, discovery.ns_port) == (True, "10.0.0.5", 9190)
    assert (discovery.host_name, discovery.aliases) == ("localhost", ["lab2-ultra=2138000SIM"])


def test_role_leaves_discovery_off_without_a_name_server_host(tmp_path: Path) -> None:
    render(tmp_path, ["taggerhub.toml"])
    assert load_settings(tmp_path / "taggerhub.toml", env={}).discovery.enabled is False
