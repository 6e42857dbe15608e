"""The role's Prometheus files rendered from an inventory, without any lab PC: targets, labels, config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import helpers
from helpers import ANSIBLE, ROLE, VENV_BIN

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _ansible_playbook() -> None:
    helpers.require_files(VENV_BIN / "ansible-playbook")  # installed with '.[test]'


def render_on_monitor(tmp_path: Path, hosts: dict[str, dict], group_vars: dict | None = None,
                      **extra_vars: object) -> Path:
    """Render the monitoring templates on `monitor` (local connection) with the given lab inventory.

    The role's defaults come in as play variables, so role-wide settings of the monitoring host
    itself are passed as extra variables; the other hosts' settings come from the inventory.
    """
    inventory = {"taggerhub": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                        "taggerhub_monitoring_host": "monitor", **(group_vars or {})},
                               "hosts": hosts}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    playbook = tmp_path / "render.yml"
    playbook.write_text(json.dumps([{
        "name": "Render the monitoring templates.", "hosts": "monitor", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": [{"name": "Render each template.", "loop": ["taggerhub-targets.json", "prometheus.yml"],
                   "ansible.builtin.template": {"src": f"{ROLE}/templates/{{{{ item }}}}.j2",
                                                "dest": f"{tmp_path}/{{{{ item }}}}", "mode": "0644"}}],
    }]))
    (tmp_path / "extra.json").write_text(json.dumps(extra_vars))
    result = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.json"),
                             "-e", f"@{tmp_path / 'extra.json'}", str(playbook)],
                            capture_output=True, text=True, timeout=120,
                            env={"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "PATH": f"{VENV_BIN}:/usr/bin:/bin",
                                 "HOME": str(Path.home())})
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp_path


def test_targets_name_every_exporting_pc_by_inventory_name_with_lab_and_own_labels(tmp_path: Path) -> None:
    out = render_on_monitor(tmp_path, {
        "monitor": {"ansible_host": "192.168.10.21"},
        "lab-pc-2": {"ansible_host": "192.168.10.22", "taggerhub_monitoring_labels": {"room": "B12"}},
        "lab-pc-3": {"ansible_host": "192.168.10.23", "taggerhub_advertise_host": "pc3.lab.example",
                     "taggerhub_metrics_port": 9300, "taggerhub_monitoring_lab": "cryo"},
        "lab-pc-4": {"ansible_host": "192.168.10.24", "taggerhub_monitoring_address": "fd00::24"},
        "lab-pc-5": {"taggerhub_exporter_enabled": False},
        "lab-pc-6": {},
    }, {"taggerhub_monitoring_lab": "optics"})
    groups = json.loads((out / "taggerhub-targets.json").read_text())
    assert groups == [
        {"targets": ["192.168.10.21:9234"], "labels": {"host": "monitor", "lab": "optics"}},
        {"targets": ["192.168.10.22:9234"], "labels": {"host": "lab-pc-2", "lab": "optics", "room": "B12"}},
        {"targets": ["pc3.lab.example:9300"], "labels": {"host": "lab-pc-3", "lab": "cryo"}},
        {"targets": ["[fd00::24]:9234"], "labels": {"host": "lab-pc-4", "lab": "optics"}},
        {"targets": ["lab-pc-6:9234"], "labels": {"host": "lab-pc-6", "lab": "optics"}},
    ]


@pytest.mark.needs("promtool")
def test_rendered_prometheus_config_passes_promtool_with_the_targets_file(tmp_path: Path) -> None:
    out = render_on_monitor(tmp_path, {"monitor": {}}, taggerhub_monitoring_scrape_interval="5s",
                            taggerhub_monitoring_scrape_timeout="4s")
    config = (out / "prometheus.yml").read_text()
    assert "scrape_interval: 5s" in config and "scrape_timeout: 4s" in config
    assert "/etc/prometheus/file_sd/taggerhub.json" in config
    result = subprocess.run(["promtool", "check", "config", "--syntax-only", str(out / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # The target list is valid file_sd JSON with no lab label when none is set.
    assert json.loads((out / "taggerhub-targets.json").read_text()) == [
        {"targets": ["monitor:9234"], "labels": {"host": "monitor"}}]


def run_role_checks(tmp_path: Path, extra: dict) -> subprocess.CompletedProcess:
    """Run only the role's assert tasks on this machine with these variables."""
    playbook = tmp_path / "assert.yml"
    playbook.write_text(json.dumps([{
        "name": "Check the role's settings.", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Run the role's checks.",
                   "ansible.builtin.include_role": {"name": "taggerhub", "tasks_from": "assert"}}],
    }]))
    (tmp_path / "extra.json").write_text(json.dumps({**extra, "ansible_python_interpreter": sys.executable}))
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,",
                           "-e", f"@{tmp_path / 'extra.json'}", str(playbook)],
                          capture_output=True, text=True, timeout=120,
                          env={"ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "PATH": f"{VENV_BIN}:/usr/bin:/bin",
                               "HOME": str(Path.home()), "ANSIBLE_LOCALHOST_WARNING": "false"})


@pytest.mark.parametrize(("port", "ok"), [(9090, False), (9190, True)])
def test_role_refuses_the_name_server_on_prometheus_port_of_the_same_host(tmp_path: Path, port: int, ok: bool) -> None:
    result = run_role_checks(tmp_path, {"taggerhub_monitoring_host": "localhost",
                                        "taggerhub_nameserver_host": "localhost", "taggerhub_nameserver_port": port})
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    if not ok:
        assert "set taggerhub_nameserver_port to another port" in result.stdout


@pytest.mark.parametrize(("users", "ok"), [
    ([{"name": "admin", "role": "admin"}, {"name": "bob", "state": "absent"}, {"name": "eve", "role": "observer",
                                                                              "state": "present"}], True),
    ([{"name": "a.b", "role": "admin"}], False),  # the dot separates name and secret in a token
    ([{"name": "bob"}], False),  # present users need a role
    ([{"name": "bob", "role": "root"}], False),
    ([{"name": "bob", "role": "admin", "state": "gone"}], False),
    ([{"name": "bob", "role": "admin"}, {"name": "bob", "state": "absent"}], False),
])
def test_role_checks_each_lab_wide_user_entry(tmp_path: Path, users: list[dict], ok: bool) -> None:
    result = run_role_checks(tmp_path, {"taggerhub_users": users})
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    if not ok:
        assert "each entry of taggerhub_users needs a name" in result.stdout, result.stdout
