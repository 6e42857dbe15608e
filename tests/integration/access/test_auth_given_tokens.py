"""Lab-wide users: ``taggerhub user add/rotate/set --token-stdin`` with a token chosen elsewhere."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from taggerhub.access.users import UserStore
from taggerhub.config import ConfigError


def user_cli(users: str, *args: str, token: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "taggerhub", "user", "--users-file", users, *args],
                          input=token + "\n", capture_output=True, text=True, timeout=60)


def lab_token(name: str) -> str:
    return f"{name}.{secrets.token_urlsafe(32)}"


def test_set_creates_then_leaves_alone_then_applies_a_changed_token_and_role(tmp_path):
    users = str(tmp_path / "users.toml")
    first, second = lab_token("alice"), lab_token("alice")
    made = user_cli(users, "set", "alice", "--role", "operator", "--token-stdin", token=first)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "user alice (operator) changed"
    assert first not in made.stdout + made.stderr + (tmp_path / "users.toml").read_text()
    stamp = (tmp_path / "users.toml").stat().st_mtime_ns
    again = user_cli(users, "set", "alice", "--role", "operator", "--token-stdin", token=first)
    assert again.stdout.strip() == "user alice (operator) unchanged"
    assert (tmp_path / "users.toml").stat().st_mtime_ns == stamp  # not rewritten
    rotated = user_cli(users, "set", "alice", "--role", "observer", "--token-stdin", token=second)
    assert rotated.stdout.strip() == "user alice (observer) changed"
    store = UserStore(users)
    store.load()
    assert store.authenticate(first) is None
    user = store.authenticate(second)
    assert user is not None and user.name == "alice" and user.role.name == "observer"


def test_add_and_rotate_take_the_token_from_stdin(tmp_path):
    users = str(tmp_path / "users.toml")
    first, second = lab_token("bob"), lab_token("bob")
    assert user_cli(users, "add", "bob", "--role", "admin", "--token-stdin", token=first).returncode == 0
    twice = user_cli(users, "add", "bob", "--role", "admin", "--token-stdin", token=first)
    assert twice.returncode != 0 and "already exists" in twice.stderr
    rotated = user_cli(users, "rotate", "bob", "--token-stdin", token=second)
    assert rotated.returncode == 0 and rotated.stdout.strip() == "user bob (admin) changed"
    missing = user_cli(users, "rotate", "carol", "--token-stdin", token=lab_token("carol"))
    assert missing.returncode != 0 and "no user 'carol'" in missing.stderr
    store = UserStore(users)
    store.load()
    assert store.authenticate(first) is None and store.authenticate(second).role.name == "admin"


@pytest.mark.parametrize(("token", "says"), [
    ("dave.short", "too weak"),
    ("dave." + "a" * 40, "too weak"),  # long but one character
    ("eve." + secrets.token_urlsafe(32), "must look like 'dave.SECRET'"),
    (secrets.token_urlsafe(32), "must look like 'dave.SECRET'"),
    ("dave." + secrets.token_hex(20) + "!$", "only letters, digits"),
], ids=["short", "one-character", "other-name", "no-name", "bad-characters"])  # fixed ids: xdist workers agree
def test_a_weak_or_malformed_given_token_is_refused_without_echoing_it(tmp_path, token, says):
    users = str(tmp_path / "users.toml")
    refused = user_cli(users, "set", "dave", "--role", "observer", "--token-stdin", token=token)
    assert refused.returncode != 0
    assert says in refused.stderr
    assert token not in refused.stdout + refused.stderr
    assert not (tmp_path / "users.toml").exists()


def test_an_empty_stdin_is_named(tmp_path):
    refused = user_cli(str(tmp_path / "users.toml"), "set", "dave", "--role", "observer", "--token-stdin", token="")
    assert refused.returncode != 0 and "no token on standard input" in refused.stderr


def test_store_put_checks_the_token_before_touching_the_file(tmp_path):
    store = UserStore(tmp_path / "users.toml")
    with pytest.raises(ConfigError, match="too weak"):
        store.put("frank", "admin", "frank.abc")
    assert not (tmp_path / "users.toml").exists()


def test_a_change_keeps_the_users_file_mode(tmp_path):
    """The role makes users.toml 0640 for the service group; a later change must not make it unreadable."""
    users = tmp_path / "users.toml"
    assert user_cli(str(users), "set", "gina", "--role", "observer", "--token-stdin",
                    token=lab_token("gina")).returncode == 0
    assert users.stat().st_mode & 0o777 == 0o600  # a new file: owner only
    users.chmod(0o640)
    assert user_cli(str(users), "set", "gina", "--role", "observer", "--token-stdin",
                    token=lab_token("gina")).returncode == 0
    assert users.stat().st_mode & 0o777 == 0o640
