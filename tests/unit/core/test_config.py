"""Settings: defaults, TOML, environment and options, with errors that name the setting."""

from __future__ import annotations

import pytest

from taggerhub.config import ConfigError, load_settings, trace_settings


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


def test_a_bad_environment_variable_is_named_exactly():
    with pytest.raises(ConfigError, match=r"^environment variable TAGGERHUB_SERVER_PORT: expected int, got 'many'$"):
        load_settings(None, env={"TAGGERHUB_SERVER_PORT": "many"})
    with pytest.raises(ConfigError, match=r"^environment variable TAGGERHUB_SERVER_PROT: unknown setting 'prot'"):
        load_settings(None, env={"TAGGERHUB_SERVER_PROT": "1"})


@pytest.mark.parametrize(("toml", "message"), [
    ('[server]\nport = "23010"', r"\[server\] port: expected an integer, got the string '23010' \(remove the quotes\)"),
    ('[server]\nport = true', r"\[server\] port: expected an integer, got the boolean true$"),
    ('[server]\nport = 23010.5', r"\[server\] port: expected an integer, got the float 23010.5$"),
    ('[server]\nhost = 127', r"\[server\] host: expected a string, got the integer 127$"),
    ('[auth]\nenabled = "yes"', r"\[auth\] enabled: expected true or false, got the string 'yes'$"),
    ('[auth]\nenabled = "true"', r"\[auth\] enabled: expected true or false, got the string 'true' \(remove"),
    ('[exporter]\nchannels = "1,2"', r"\[exporter\] channels: expected a list, got the string '1,2'$"),
    ('[exporter]\nchannels = [1, "2"]', r"\[exporter\] channels\[1\]: expected an integer, got the string '2'"),
])
def test_a_toml_value_of_the_wrong_type_is_refused_naming_file_key_and_type(tmp_path, toml, message):
    path = tmp_path / "taggerhub.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(path, env={})
    assert str(caught.value).startswith(str(path))


def test_toml_integers_are_numbers_for_float_settings(tmp_path):
    path = tmp_path / "taggerhub.toml"
    path.write_text("[server]\nidle_timeout_s = 5\n")
    settings = load_settings(path, env={})
    assert settings.server.idle_timeout_s == 5.0 and isinstance(settings.server.idle_timeout_s, float)


def test_trace_settings_says_which_layer_set_each_value(tmp_path):
    path = tmp_path / "taggerhub.toml"
    path.write_text('[server]\nport = 23001\nhost = "127.0.0.1"\n')
    settings, sources = trace_settings(path, env={"TAGGERHUB_SERVER_PORT": "23002", "TAGGERHUB_CONFIG": "x"},
                                       overrides={"server": {"backend": "hardware", "host": None}})
    assert (settings.server.port, settings.server.host, settings.server.backend) == (23002, "127.0.0.1", "hardware")
    assert sources == {"server.port": "TAGGERHUB_SERVER_PORT", "server.host": str(path), "server.backend": "option"}
