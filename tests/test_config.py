"""Settings: defaults, TOML, environment and options, with errors that name the setting."""

from __future__ import annotations

import pytest

from taggerhub.config import ConfigError, load_settings


def test_environment_overrides_file_and_options_override_environment(tmp_path):
    path = tmp_path / "taggerhub.toml"
    path.write_text('[server]\nport = 23001\nhost = "127.0.0.1"\n[simulator]\nclock = "virtual"\n')
    settings = load_settings(path, env={"TAGGERHUB_SERVER_PORT": "23002"}, overrides={"server": {"host": None}})
    assert settings.server.port == 23002
    assert settings.server.host == "127.0.0.1"
    assert settings.simulator.clock == "virtual"
    assert load_settings(path, env={}, overrides={"server": {"port": 1}}).server.port == 1


def test_client_side_variables_do_not_clash_with_server_settings():
    env = {"TAGGERHUB_TOKEN": "t", "TAGGERHUB_CLIENT_TLS_CA": "ca.pem", "TAGGERHUB_CLIENT_TLS_CERT": "c.pem"}
    assert load_settings(None, env=env).tls.enabled is False


@pytest.mark.parametrize(("env", "message"), [
    ({"TAGGERHUB_SERVER_PROT": "1"}, "unknown setting 'prot'"),
    ({"TAGGERHUB_SERVER_PORT": "many"}, "expected int"),
    ({"TAGGERHUB_SERVER_BACKEND": "fpga"}, "server.backend must be"),
    ({"TAGGERHUB_AUTH_ENABLED": "perhaps"}, "expected true or false"),
])
def test_bad_settings_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(None, env=env)


def test_bad_file_is_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML"):
        load_settings(path, env={})
    path.write_text("[sever]\nport = 1\n")
    with pytest.raises(ConfigError, match=r"unknown section \[sever\]"):
        load_settings(path, env={})
