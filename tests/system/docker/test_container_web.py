"""The compose `web` service: the live lab page over HTTPS beside a server with auth and TLS on, showing its rates."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from taggerhub import client

from .containers import PREFIX, REPO, RUN_ID, ComposeProject, docker, free_port, write_env_file
from .test_container_secure import lab_config

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def page_rates(base: str, port: int, ca: str, token: str, ticks: int = 40) -> tuple[dict, list[float]]:
    """Log in as a browser would, open the page's WebSocket, return its hello and the last 2-s mean rates."""
    origin = {"Origin": base}
    context = ssl.create_default_context(cafile=ca)
    with httpx.Client(base_url=base, verify=context, timeout=10) as browser:
        login = browser.post("/api/login", json={"token": token}, headers=origin)
        assert login.status_code == 200, login.text
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    with connect(f"wss://127.0.0.1:{port}/ws", ssl=context, additional_headers={**origin, "Cookie": cookie},
                 open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=15))
        mean: list[float] = []
        for _ in range(ticks * 4):  # rates at 10/s, status and settings between them: bounded
            message = json.loads(ws.recv(timeout=10))
            if message["type"] == "fatal":
                raise AssertionError(message["message"])
            if message["type"] == "rates" and message["mean"] is not None:
                mean, ticks = message["mean"], ticks - 1
                if ticks <= 0:
                    break
    return hello, mean


def test_web_service_serves_the_login_page_over_https_and_shows_the_servers_rates(taggerhub_image, tmp_path: Path):
    config, alice, monitor = lab_config(tmp_path, "taggerhub")  # the name the web service dials the server by
    rpc_port, metrics_port, web_port = free_port(), free_port(), free_port()
    env = write_env_file(tmp_path / "test.env", taggerhub_image, rpc_port, metrics_port, extra=(
        f"TAGGERHUB_CONFIG_DIR={config}\nTAGGERHUB_INSECURE=false\nCOMPOSE_PROFILES=web\n"
        f"TAGGERHUB_MONITOR_TOKEN={monitor}\nTAGGERHUB_MONITOR_TLS_CA=/etc/taggerhub/pki/ca.pem\n"
        f"TAGGERHUB_WEB_PORT={web_port}\nTAGGERHUB_WEB_CERT=/etc/taggerhub/pki/server.pem\n"
        "TAGGERHUB_WEB_KEY=/etc/taggerhub/pki/server-key.pem\n"
    ))
    project = ComposeProject(f"{PREFIX}-web-{RUN_ID}", [REPO / "compose.yaml"], env, rpc_port, metrics_port)
    ca = str(config / "pki" / "ca.pem")
    base = f"https://127.0.0.1:{web_port}"
    try:
        project.compose("up", "--detach", "--wait", "--wait-timeout", "180", "--no-build", "--pull", "never")
        web_id = project.container_id("web")
        assert docker("inspect", "--format", "{{.State.Health.Status}}", web_id).stdout.strip() == "healthy"

        page = httpx.get(f"{base}/", verify=ssl.create_default_context(cafile=ca), timeout=10)  # the lab CA's cert
        assert page.status_code == 200 and 'id="login-form"' in page.text and 'id="token"' in page.text
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{web_port}/", timeout=5)  # no plain HTTP beside it

        TT = client.createProxy(host="127.0.0.1", port=rpc_port, token=alice, tls_ca=ca)
        tagger = TT.createTimeTagger()
        tagger.setTestSignal(1, True)  # the simulated test signal: 800 kHz
        hello, mean = page_rates(base, web_port, ca, alice)
        assert (hello["type"], hello["user"], hello["role"]) == ("hello", "alice", "operator")
        assert mean[hello["channels"].index(1)] == pytest.approx(800e3, rel=0.02)

        logs = project.compose("logs", "--no-log-prefix", "web").stdout
        assert "serving the lab page" in logs and "INSECURE" not in logs
    finally:
        project.compose("--profile", "*", "down", "--volumes", "--timeout", "10", check=False)
