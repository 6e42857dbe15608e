"""Wrong settings in a container: the log names what is wrong, and the health check says down."""

from __future__ import annotations

from pathlib import Path

import pytest

from .containers import PREFIX, REPO, RUN_ID, ComposeProject, free_port, wait_until, write_env_file

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_missing_config_file_is_named_in_the_log_and_the_server_does_not_answer(taggerhub_image, tmp_path: Path):
    empty = tmp_path / "config"
    empty.mkdir(mode=0o755)
    rpc_port = free_port()
    env = write_env_file(tmp_path / "test.env", taggerhub_image, rpc_port, free_port(),
                         extra=f"TAGGERHUB_CONFIG_DIR={empty}\n")
    project = ComposeProject(f"{PREFIX}-badcfg-{RUN_ID}", [REPO / "compose.yaml"], env, rpc_port, 0)
    try:
        project.compose("up", "--detach", "--no-build", "--pull", "never")
        message = "taggerhub serve: config file not found: /etc/taggerhub/taggerhub.toml"
        wait_until(lambda: message in project.compose("logs", "--no-log-prefix").stdout, timeout_s=60,
                   what="the server's error in the log")
        status = project.exec("taggerhub", "status", "--host", "127.0.0.1", "--port", str(rpc_port), check=False)
        assert status.returncode == 1
        assert "not reachable" in status.stderr
    finally:
        project.compose("down", "--volumes", "--timeout", "10", check=False)
    assert project.leftovers() == {"containers": [], "volumes": [], "networks": []}
