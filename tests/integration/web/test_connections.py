"""A page costs one server connection (two with a live histogram), and a user past the limit is told why on the page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pagekit import USERS
from taggerhub.access.users import UserStore
from taggerhub.config import WebSettings
from taggerhub.lab.web import build
from taggerhub.lab.web.link import PageLink, Target
from taggerhub.testing import ServerContext

ORIGIN = "http://testserver"
LIMIT = 3


@pytest.fixture
def served(tmp_path: Path):
    users = tmp_path / "users.toml"
    store = UserStore(users)
    tokens = {name: store.add(name, role) for name, role in USERS.items()}
    auth = {"enabled": True, "users_file": str(users), "max_connections_per_user": LIMIT}
    with ServerContext(env={"TAGGERHUB_SIMULATOR_CLOCK": "realtime"}, auth=auth) as ctx:
        yield ctx, tokens


def connections(ctx: ServerContext, user: str) -> int:
    return sum(s.connections for s in ctx.hub.sessions.all() if s.user == user)


def settle(ctx: ServerContext, user: str, expected: int) -> int:
    """Connections closed by the client reach the server a moment later: wait (bounded) for the count."""
    deadline = time.monotonic() + 5
    while connections(ctx, user) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return connections(ctx, user)


def test_a_page_is_one_connection_and_its_live_histogram_one_more(served) -> None:
    ctx, tokens = served
    page = PageLink(Target("127.0.0.1", ctx.port), tokens["otto"]).open()
    try:
        assert settle(ctx, "otto", 1) == 1
        page.rates()
        time.sleep(0.3)
        assert page.rates()["rates"] is not None  # the Countrate answers over the library's connection
        assert set(page.settings()["1"]) == {"trigger_level", "delay", "deadtime", "test_signal"}  # a batch, too
        assert page.change(2, "trigger_level", 0.2) == pytest.approx(0.2)
        page.start_histogram("Correlation", 1, 2, 100, 50)
        assert settle(ctx, "otto", 2) == 2
        assert len(page.histogram()["counts"]) == 50
        page.stop_histogram()
        assert settle(ctx, "otto", 1) == 1
    finally:
        page.close()
    assert settle(ctx, "otto", 0) == 0
    deadline = time.monotonic() + 5
    while "Countrate" in ctx.hub.table.counts_by_type():  # the session ended: its measurements are freed
        assert time.monotonic() < deadline, ctx.hub.table.counts_by_type()
        time.sleep(0.05)


def test_as_many_pages_as_the_limit_and_the_next_one_names_the_limit_and_what_to_do(served) -> None:
    ctx, tokens = served
    app, _, _ = build(WebSettings(listen="127.0.0.1:0", server=f"127.0.0.1:{ctx.port}"))
    web = TestClient(app, base_url=ORIGIN)
    web.post("/api/login", json={"token": tokens["otto"]}, headers={"Origin": ORIGIN})
    pages = [web.websocket_connect("/ws", headers={"Origin": ORIGIN}) for _ in range(LIMIT + 1)]
    try:
        for page in pages[:LIMIT]:
            assert page.__enter__().receive_json()["type"] == "hello"
        assert settle(ctx, "otto", LIMIT) == LIMIT
        refused = pages[LIMIT].__enter__().receive_json()
        assert refused["type"] == "fatal"
        for needle in (f"already has {LIMIT} connections", "max_connections_per_user",
                       "each open page uses 1 connection, 2 with a live histogram", "close pages"):
            assert needle in refused["message"], refused["message"]
    finally:
        for page in pages:
            page.__exit__(None, None, None)
