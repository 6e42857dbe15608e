"""The users file, tokens and roles, without a server."""

from __future__ import annotations

import stat

import pytest

from taggerhub.access.users import Role, UserStore, hash_token, verify_token
from taggerhub.config import ConfigError


def test_tokens_are_stored_only_as_salted_scrypt_hashes(tmp_path):
    store = UserStore(tmp_path / "users.toml")
    token = store.add("alice", "operator")
    text = (tmp_path / "users.toml").read_text()
    assert token not in text and token.split(".")[1] not in text
    assert 'role = "operator"' in text and "scrypt$16384$8$1$" in text
    assert stat.S_IMODE((tmp_path / "users.toml").stat().st_mode) == 0o600
    assert hash_token(token) != hash_token(token)  # fresh salt each time
    assert verify_token(token, hash_token(token)) and not verify_token(token + "x", hash_token(token))


def test_authenticate_rotate_remove_and_role(tmp_path):
    store = UserStore(tmp_path / "users.toml")
    alice, bob = store.add("alice", "admin"), store.add("bob", "observer")
    server = UserStore(tmp_path / "users.toml")
    server.load()
    assert server.authenticate(alice).role is Role.admin
    assert server.authenticate(alice).name == "alice"  # second time from the cache
    assert server.authenticate(bob.replace("bob.", "alice.")) is None  # bob's secret under alice's name
    assert server.authenticate("") is None and server.authenticate("nobody.x") is None
    new = store.rotate("alice")
    server.load()
    assert server.authenticate(alice) is None and server.authenticate(new).name == "alice"
    store.set_role("bob", "operator")
    store.remove("alice")
    server.load()
    assert server.authenticate(new) is None and server.authenticate(bob).role is Role.operator
    assert [u.name for u in store.users()] == ["bob"]


def test_bad_user_input_is_named(tmp_path):
    store = UserStore(tmp_path / "users.toml")
    store.add("alice", "observer")
    with pytest.raises(ConfigError, match="already exists"):
        store.add("alice", "observer")
    with pytest.raises(ConfigError, match="unknown role 'root'"):
        store.add("carol", "root")
    with pytest.raises(ConfigError, match="invalid user name"):
        store.add("a b", "observer")
    with pytest.raises(ConfigError, match="no user 'zed'"):
        store.rotate("zed")
    (tmp_path / "broken.toml").write_text("[users.x]\nrole = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        UserStore(tmp_path / "broken.toml").load()
