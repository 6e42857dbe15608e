"""`taggerhub config --dump`, `status --config` and the status table: settings and answers an admin can read."""

from __future__ import annotations

import os
import socket
import tomllib

import pytest

from taggerhub.cli import main


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No TAGGERHUB_* variables from the machine running the tests."""
    for name in [n for n in os.environ if n.startswith("TAGGERHUB_")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_dump_shows_every_value_with_its_source_and_hides_tokens(tmp_path, clean_env, capsys) -> None:
    path = tmp_path / "taggerhub.toml"
    path.write_text('[server]\nport = 23010\n[exporter]\ntoken = "exporter.secretsecretsecret"\n')
    clean_env.setenv("TAGGERHUB_CONFIG", str(path))
    clean_env.setenv("TAGGERHUB_SERVER_HOST", "0.0.0.0")
    assert main(["config", "--dump"]) == 0
    out = capsys.readouterr().out
    lines = {line.split("=")[0].strip(): line for line in out.splitlines() if "=" in line}
    assert lines["port"].endswith(f"# {path}")
    assert lines["host"].endswith("# TAGGERHUB_SERVER_HOST") and '"0.0.0.0"' in lines["host"]
    assert lines["backend"].endswith("# default")
    assert f"settings file: {path} (from $TAGGERHUB_CONFIG)" in out
    assert "secret" not in out and '"(hidden)"' in lines["token"]
    dumped = tomllib.loads(out)  # the dump is TOML: a start for a settings file
    assert dumped["server"]["port"] == 23010 and dumped["discovery"]["ns_port"] == 9090


def test_config_without_an_action_is_a_usage_error(clean_env, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["config"])
    assert done.value.code == 2 and "--dump" in capsys.readouterr().err


def test_config_dump_reports_a_bad_file_in_one_line(tmp_path, clean_env, capsys) -> None:
    path = tmp_path / "taggerhub.toml"
    path.write_text('[server]\nport = "23010"\n')
    assert main(["config", "--dump", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"taggerhub config: {path} [server] port: expected an integer, got the string '23010' " \
                  "(remove the quotes)\n"


def test_status_dials_host_and_port_of_the_config_file(tmp_path, clean_env, capsys) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "taggerhub.toml"
    path.write_text(f'[server]\nhost = "0.0.0.0"\nport = {port}\n')
    assert main(["status", "--config", str(path)]) == 1
    assert f"taggerhub server at localhost:{port} is not reachable" in capsys.readouterr().err
    assert main(["status", "--config", str(path), "--port", "1", "--host", "127.0.0.1"]) == 1
    assert "server at 127.0.0.1:1 is not reachable" in capsys.readouterr().err


def test_status_says_the_simulator_only_imitates_the_library_version() -> None:
    from taggerhub.cli.status import format_status

    status = {"version": "0.1.0", "backend": "simulator", "backend_version": "2.22.6", "sessions": 1, "objects": 0,
              "uptime_s": 3.2, "devices": [{"serial": "2138000SIM", "model": "Time Tagger Ultra"}]}
    text = format_status(status, "localhost", 23000)
    assert "backend   simulator (simulates library 2.22.6)" in text.splitlines()
    assert "backend   hardware (library 2.22.6)" in format_status({**status, "backend": "hardware"}, "h", 1)
