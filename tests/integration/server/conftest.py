"""Fixtures for access-management tests: a users file with real tokens, servers with auth (and TLS) on."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import AuthServer
from taggerhub.access import certs
from taggerhub.access.users import UserStore

USERS = {"ada": "admin", "otto": "operator", "olga": "operator", "oscar": "observer"}


@pytest.fixture
def users_file(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "users.toml"
    store = UserStore(path)
    tokens = {name: store.add(name, role) for name, role in USERS.items()}
    return path, tokens


def auth_env(users: Path, audit: Path, **extra: str) -> dict[str, str]:
    env = {
        "TAGGERHUB_AUTH_ENABLED": "true",
        "TAGGERHUB_AUTH_USERS_FILE": str(users),
        "TAGGERHUB_AUTH_AUDIT_LOG": str(audit),
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def start_auth_server(start_hub, users_file, tmp_path: Path):
    """Factory: start_auth_server(**env) -> AuthServer (in this process) with tokens for ada/otto/olga/oscar."""
    path, tokens = users_file

    def start(**env: str) -> AuthServer:
        audit = tmp_path / f"audit-{len(list(tmp_path.glob('audit-*')))}.jsonl"
        return AuthServer(start_hub(env=auth_env(path, audit, **env)), path, audit, dict(tokens))

    return start


@pytest.fixture
def start_auth_process(start_server, users_file, tmp_path: Path):
    """Factory: as start_auth_server, but a `taggerhub serve` process (for signals, memory of the process)."""
    path, tokens = users_file

    def start(*args: str, **env: str) -> AuthServer:
        audit = tmp_path / f"audit-{len(list(tmp_path.glob('audit-*')))}.jsonl"
        server = start_server(*args, env=auth_env(path, audit, **env))
        return AuthServer(server, path, audit, dict(tokens))

    return start


@pytest.fixture
def auth_server(start_auth_server) -> AuthServer:
    return start_auth_server()


@pytest.fixture(scope="session")
def lab_pki(tmp_path_factory) -> Path:
    """A lab CA with a server certificate for localhost/127.0.0.1 and client certificates."""
    directory = tmp_path_factory.mktemp("pki")
    certs.init(directory, ["localhost", "127.0.0.1"], clients=["ada", "oscar", "mallory"])
    return directory
