"""A live server with auth on, the simulator on a virtual clock, and a plugin folder with good and bad plugins."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from pluginfiles import write_plugins

from taggerhub.auth import UserStore

USERS = {"ada": "admin", "otto": "operator", "oscar": "observer"}


@dataclass
class LabServer:
    server: object
    audit_file: Path
    plugin_dir: Path
    tokens: dict[str, str]

    @property
    def port(self) -> int:
        return self.server.port  # type: ignore[attr-defined]

    def audit(self) -> list[dict]:
        return [json.loads(line) for line in self.audit_file.read_text().splitlines()]


@pytest.fixture
def lab_server(start_server, tmp_path: Path) -> LabServer:
    store = UserStore(tmp_path / "users.toml")
    tokens = {name: store.add(name, role) for name, role in USERS.items()}
    folder = write_plugins(tmp_path / "plugins")
    audit = tmp_path / "audit.jsonl"
    server = start_server(env={
        "TAGGERHUB_AUTH_ENABLED": "true", "TAGGERHUB_AUTH_USERS_FILE": str(store.path),
        "TAGGERHUB_AUTH_AUDIT_LOG": str(audit), "TAGGERHUB_SIMULATOR_CLOCK": "virtual",
        "TAGGERHUB_SIMULATOR_SEED": "11", "TAGGERHUB_EXPERIMENTS_PLUGIN_DIR": str(folder),
    })
    return LabServer(server, audit, folder, tokens)
