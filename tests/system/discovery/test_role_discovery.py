"""The Ansible role's discovery parts: the name server unit it installs and the [discovery] it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO, VENV_BIN, render_role_templates, require_files
from taggerhub.config import load_settings

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _ansible_playbook() -> None:
    require_files(VENV_BIN / "ansible-playbook")  # installed with '.[test]'


render = render_role_templates


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
