"""A real server with auth on, the web page served beside it, and Debian's chromium driven by Playwright.

The browser is the system's (``/usr/bin/chromium``); Playwright never downloads one. Tests
fail where it is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pagekit import CHROMIUM, CHROMIUM_ARGS, USERS, Lab
from taggerhub.access.users import UserStore
from taggerhub.config import WebSettings
from taggerhub.lab.web import WebContext
from taggerhub.testing import ServerContext


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).is_file():
        pytest.fail(f"no chromium at {CHROMIUM} (`bash .ci/run` installs Debian's chromium)", pytrace=False)
    from playwright import sync_api  # installed with '.[test]'

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def lab(browser: Any, tmp_path: Path) -> Iterator[Lab]:
    users = tmp_path / "users.toml"
    store = UserStore(users)
    tokens = {name: store.add(name, role) for name, role in USERS.items()}
    audit = tmp_path / "audit.jsonl"
    env = {"TAGGERHUB_SIMULATOR_CLOCK": "realtime"}  # the page shows live rates: the wall clock
    with ServerContext(env=env, auth={"enabled": True, "users_file": str(users), "audit_log": str(audit)}) as ctx, \
            WebContext(WebSettings(listen="127.0.0.1:0", server=f"127.0.0.1:{ctx.port}")) as web:
        lab = Lab(ctx, tokens, web.url, browser, audit, tmp_path / "artifacts")
        try:
            yield lab
        finally:
            for page in lab.pages:
                page.context.close()
