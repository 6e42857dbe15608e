#!/usr/bin/env python3
"""One source for each config file that exists in two places; the second copy is written from it.

    scripts/render_configs.py            write every derived file
    scripts/render_configs.py --check    write nothing; exit 1 naming each derived file that drifted

Sources and what is derived from them:

- the Ansible role's templates (ansible/roles/taggerhub/templates/*.j2), rendered with the
  role's defaults by ansible-playbook itself: the systemd units and udev rules in systemd/, and
  monitoring/prometheus/prometheus.yml (with the rules/ and targets/ paths of that folder);
- monitoring/grafana/provisioning/datasources/prometheus.yml: the compose monitoring profile's
  data source, deploy/monitoring/grafana/provisioning/datasources/prometheus.yml, differs only
  in the URL (the compose service `prometheus`). Its `timeInterval` must equal the role's
  scrape interval. The dashboards provider is one file, mounted by compose as it is.

Edit the source, run this script, commit both (tests/system/deploy/test_config_sources.py fails on drift).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROLE = Path("ansible/roles/taggerhub")
SCRIPT = "scripts/render_configs.py"
# derived file -> role template that is its source
FROM_TEMPLATES = {
    "systemd/taggerhub.service": "taggerhub.service.j2",
    "systemd/taggerhub-native.service": "taggerhub-native.service.j2",
    "systemd/taggerhub-exporter.service": "taggerhub-exporter.service.j2",
    "systemd/taggerhub-nameserver.service": "taggerhub-nameserver.service.j2",
    "systemd/taggerhub-web.service": "taggerhub-web.service.j2",
    "systemd/99-timetagger.rules": "99-timetagger.rules.j2",
    "monitoring/prometheus/prometheus.yml": "prometheus.yml.j2",
}
# The shipped Prometheus config sits beside rules/ and targets/ (cp -r monitoring/prometheus/*).
SHIPPED_PROMETHEUS_VARS = {"taggerhub_monitoring_rule_glob": "rules/*.yml",
                           "taggerhub_monitoring_sd_files": ["targets/*.yml"],
                           "taggerhub_monitoring_credentials_file": "taggerhub-scraper.token"}
GRAFANA_SOURCE = "monitoring/grafana/provisioning/datasources/prometheus.yml"
GRAFANA_COMPOSE = "deploy/monitoring/grafana/provisioning/datasources/prometheus.yml"


def header(source: str) -> str:
    return f"# Generated from {source}\n# by {SCRIPT}: edit that file, then run the script.\n"


def ansible_playbook() -> str:
    beside = Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    if not found:
        sys.exit(f"{SCRIPT}: ansible-playbook not found (pip install -e '.[deploy]')")
    return found


def render_templates(root: Path) -> dict[str, str]:
    """Every FROM_TEMPLATES file as the role renders it with its defaults (ansible_managed line replaced)."""
    role = root / ROLE
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        playbook = out / "render.yml"
        playbook.write_text(json.dumps([{
            "name": "Render the role's templates with its defaults.",
            "hosts": "localhost", "connection": "local", "gather_facts": False,
            "vars": {"ansible_python_interpreter": sys.executable},
            "vars_files": [str(role / "defaults/main.yml"), str(role / "vars/main.yml")],
            "tasks": [{"name": "Render each template.", "loop": sorted(set(FROM_TEMPLATES.values())),
                       "ansible.builtin.template": {"src": f"{role}/templates/{{{{ item }}}}",
                                                    "dest": f"{out}/{{{{ item }}}}", "mode": "0644"}}],
        }]))
        # Extra variables outrank vars/main.yml: only the template that uses them changes.
        (out / "extra.json").write_text(json.dumps(SHIPPED_PROMETHEUS_VARS))
        env = {"ANSIBLE_CONFIG": str(root / "ansible/ansible.cfg"), "ANSIBLE_LOCALHOST_WARNING": "false",
               "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               "HOME": os.environ.get("HOME", tmp)}
        done = subprocess.run([ansible_playbook(), "-i", "localhost,", "-e", f"@{out / 'extra.json'}", str(playbook)],
                              capture_output=True, text=True, timeout=300, env=env)
        if done.returncode != 0:
            sys.exit(f"{SCRIPT}: rendering the role's templates failed:\n{done.stdout}{done.stderr}")
        rendered = {}
        for target, template in FROM_TEMPLATES.items():
            first, rest = (out / template).read_text().split("\n", 1)
            assert first.startswith("#"), f"{template}: the first line must be the ansible_managed comment"
            rendered[target] = header(f"{ROLE}/templates/{template}") + rest
        return rendered


def role_scrape_interval(root: Path) -> str:
    defaults = (root / ROLE / "defaults/main.yml").read_text()
    match = re.search(r"^taggerhub_monitoring_scrape_interval:\s*(\S+)", defaults, flags=re.M)
    if not match:
        sys.exit(f"{SCRIPT}: taggerhub_monitoring_scrape_interval not in the role's defaults")
    return match.group(1).strip("\"'")


def grafana_datasource(root: Path) -> dict[str, str]:
    source = (root / GRAFANA_SOURCE).read_text()
    interval = re.findall(r"^\s*timeInterval:\s*(\S+)", source, flags=re.M)
    if interval != [role_scrape_interval(root)]:
        sys.exit(f"{SCRIPT}: {GRAFANA_SOURCE}: timeInterval {interval} is not the scrape interval "
                 f"{role_scrape_interval(root)} (taggerhub_monitoring_scrape_interval)")
    lines = source.splitlines(keepends=True)
    body = "".join(line for line in lines if not line.startswith("#"))
    if body.count("url: http://localhost:9090") != 1:
        sys.exit(f"{SCRIPT}: {GRAFANA_SOURCE} must have exactly one `url: http://localhost:9090`")
    compose = body.replace("url: http://localhost:9090", "url: http://prometheus:9090  # the compose service")
    return {GRAFANA_COMPOSE: header(GRAFANA_SOURCE)
            + "# The compose monitoring profile's data source: Prometheus on the compose network.\n" + compose}


def derived(root: Path) -> dict[str, str]:
    return {**render_templates(root), **grafana_datasource(root)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a derived file drifted")
    parser.add_argument("--root", type=Path, default=REPO, help="the checkout (default: this one)")
    args = parser.parse_args(argv)
    drifted = []
    for name, text in derived(args.root).items():
        path = args.root / name
        if path.exists() and path.read_text() == text:
            continue
        drifted.append(name)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and drifted:
        print(f"{SCRIPT}: drifted from their source (run the script): {', '.join(drifted)}", file=sys.stderr)
        return 1
    for name in drifted:
        print(f"{SCRIPT}: wrote {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
