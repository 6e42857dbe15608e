"""The web app without a browser: logins, cross-site refusals, bad input, settings and the CLI (fast)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from pagekit import USERS
from taggerhub.access.users import UserStore
from taggerhub.cli.main import build_parser
from taggerhub.config import ConfigError, WebSettings, load_settings
from taggerhub.lab.web import build
from taggerhub.lab.web.link import PageLink, Target, _number
from taggerhub.testing import ServerContext

ORIGIN = "http://testserver"


@pytest.fixture
def served(tmp_path: Path):
    users = tmp_path / "users.toml"
    store = UserStore(users)
    tokens = {name: store.add(name, role) for name, role in USERS.items()}
    env = {"TAGGERHUB_SIMULATOR_CLOCK": "realtime"}  # the virtual clock would race while the page's Countrate runs
    with ServerContext(env=env, auth={"enabled": True, "users_file": str(users)}) as ctx:
        app, _, _ = build(WebSettings(listen="127.0.0.1:0", server=f"127.0.0.1:{ctx.port}"))
        yield ctx, TestClient(app, base_url=ORIGIN), tokens


def test_login_names_the_user_keeps_the_token_and_refuses_bad_ones(served) -> None:
    _, web, tokens = served
    assert web.get("/api/me").status_code == 401
    answer = web.post("/api/login", json={"token": tokens["otto"]}, headers={"Origin": ORIGIN})
    assert answer.json() == {"user": "otto", "role": "operator"}
    assert tokens["otto"] not in answer.text and tokens["otto"] not in answer.headers["set-cookie"]
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert web.get("/api/me").json() == {"user": "otto", "role": "operator"}
    web.post("/api/logout")
    assert web.get("/api/me").status_code == 401
    bad = web.post("/api/login", json={"token": "otto.wrong"}, headers={"Origin": ORIGIN})
    assert bad.status_code == 401 and "access token not valid" in bad.json()["error"]
    empty = web.post("/api/login", json={"token": ""}, headers={"Origin": ORIGIN})
    assert empty.status_code == 401 and "enter your access token" in empty.json()["error"]
    assert web.post("/api/login", json={"token": 5}, headers={"Origin": ORIGIN}).status_code == 400
    assert web.post("/api/login", content=b"{", headers={"Origin": ORIGIN}).status_code == 400


def test_cross_site_login_and_websocket_are_refused(served) -> None:
    _, web, tokens = served
    foreign = web.post("/api/login", json={"token": tokens["ada"]}, headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "cross-site" in foreign.json()["error"]
    web.post("/api/login", json={"token": tokens["ada"]}, headers={"Origin": ORIGIN})
    with pytest.raises(WebSocketDisconnect) as refused, \
            web.websocket_connect("/ws", headers={"Origin": "http://evil.example"}) as ws:
        ws.receive_json()
    assert refused.value.code == 4401


def test_websocket_says_hello_and_answers_commands(served) -> None:
    ctx, web, tokens = served
    web.post("/api/login", json={"token": tokens["oscar"]}, headers={"Origin": ORIGIN})
    with web.websocket_connect("/ws", headers={"Origin": ORIGIN}) as ws:
        hello = ws.receive_json()
        assert (hello["type"], hello["user"], hello["role"], hello["channels"]) == \
            ("hello", "oscar", "observer", [1, 2, 3, 4, 5, 6, 7, 8])
        ws.send_json({"op": "lease", "id": 1, "action": "acquire", "seconds": 30})
        ws.send_json({"op": "frobnicate", "id": 2})
        results = {}
        while len(results) < 2:
            message = ws.receive_json()
            if message["type"] == "result":
                results[message["id"]] = message
        assert "refused by the server" in results[1]["message"] and "oscar" in results[1]["message"]
        assert "unknown command 'frobnicate'" in results[2]["message"]
        sessions = [s for s in ctx.hub.sessions.all() if s.user == "oscar"]
        assert len(sessions) == 1  # the page is its own server session, as oscar
    _wait_freed(ctx)  # the page closed: its session ended and the server freed its Countrate


def _wait_freed(ctx: ServerContext) -> None:
    deadline = time.monotonic() + 5
    while "Countrate" in ctx.hub.table.counts_by_type():
        assert time.monotonic() < deadline, ctx.hub.table.counts_by_type()
        time.sleep(0.05)


def test_two_users_in_one_web_process_are_two_sessions_with_their_own_roles(served) -> None:
    ctx, _, tokens = served
    target = Target("127.0.0.1", ctx.port)
    otto, oscar = PageLink(target, tokens["otto"]).open(), PageLink(target, tokens["oscar"]).open()
    try:
        assert (otto.you["user"], otto.you["role"]) == ("otto", "operator")
        assert (oscar.you["user"], oscar.you["role"]) == ("oscar", "observer")
        assert otto.you["session"] != oscar.you["session"]
        assert otto.change(1, "trigger_level", "0.25") == pytest.approx(0.25)
        with pytest.raises(PermissionError, match="needs role operator"):
            oscar.change(1, "trigger_level", 0.3)
        with pytest.raises(ValueError, match="channel 9 is not an input"):
            otto.change(9, "delay", 0)
        with pytest.raises(ValueError, match="unknown setting 'gain'"):
            otto.change(1, "gain", 1)
        with pytest.raises(ValueError, match="whole number of picoseconds"):
            otto.change(1, "delay", "1.5")
        assert oscar.settings()["1"]["trigger_level"] == pytest.approx(0.25)
    finally:
        otto.close()
        oscar.close()


@pytest.mark.parametrize(("value", "kind", "message"), [
    ("abc", float, "must be a number"), (float("nan"), float, "finite"), (True, int, "must be a number"),
    ("1", bool, "true or false"), (None, int, "must be a number"),
])
def test_numbers_from_the_page_are_checked(value, kind, message) -> None:
    with pytest.raises(ValueError, match=message):
        _number(value, "x", kind)


def test_settings_and_command_line() -> None:
    with pytest.raises(ConfigError, match="beyond loopback\\) without HTTPS"):
        build(WebSettings(listen="0.0.0.0:8023"))
    with pytest.raises(ConfigError, match="go together"):
        build(WebSettings(cert_file="page.pem"))
    with pytest.raises(ConfigError, match="update_hz"):
        build(WebSettings(update_hz=0))
    settings = load_settings(None, env={"TAGGERHUB_WEB_LISTEN": "127.0.0.1:9000"})
    assert settings.web.listen == "127.0.0.1:9000" and settings.web.update_hz == 10.0
    args = build_parser().parse_args(["web", "--server", "tagger-pc:23000", "--update-hz", "20"])
    assert (args.server, args.update_hz, args.func.__name__) == ("tagger-pc:23000", 20.0, "cmd_web")


def test_a_taken_page_address_is_one_line_and_exit_2_before_saying_serving() -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "taggerhub", "web", "--listen", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"taggerhub web: cannot listen on 127.0.0.1:{port} for the page: the port is "
                                     "already in use (another taggerhub web, or another program); stop it, or "
                                     "choose another address with --listen or [web] listen")
