"""The ASGI app of ``taggerhub web``: log in with a token, then one WebSocket per open page.

A login is checked against the server (which says who the token belongs to) and
kept in this process's memory under a random cookie; the token never goes back to
the browser. Every page the browser opens is then its own server session
(:class:`PageLink`), so roles, the lease and the audit log apply as to any client.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from anyio import to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from ...config import WebSettings
from .link import PageLink, Target, whoami
from .push import PagePusher, explain

COOKIE = "taggerhub_web"
MAX_TOKEN_CHARS = 512


@dataclass
class Login:
    """A browser's login: the credential stays here, the browser holds only the cookie naming it."""

    token: str
    user: str
    role: str
    last_seen: float = field(default_factory=time.monotonic)


class Logins:
    """Logins by cookie value, forgotten after ``idle_s`` unused."""

    def __init__(self, idle_s: float):
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._by_cookie: dict[str, Login] = {}

    def add(self, login: Login) -> str:
        cookie = secrets.token_urlsafe(32)
        with self._lock:
            self._by_cookie[cookie] = login
        return cookie

    def get(self, cookie: str | None) -> Login | None:
        now = time.monotonic()
        with self._lock:
            for key in [k for k, v in self._by_cookie.items() if now - v.last_seen > self.idle_s]:
                del self._by_cookie[key]
            login = self._by_cookie.get(cookie or "")
            if login is not None:
                login.last_seen = now
            return login

    def remove(self, cookie: str | None) -> None:
        with self._lock:
            self._by_cookie.pop(cookie or "", None)


def _static_dir() -> str:
    return str(resources.files("taggerhub.lab.web") / "static")


def _same_origin(origin: str | None, host: str | None) -> bool:
    """A WebSocket or login must come from this page (no cross-site WebSocket hijacking)."""
    if not origin or not host:
        return False
    return urlsplit(origin).netloc == host


def create_app(settings: WebSettings, target: Target, cert_login: bool = False) -> Starlette:
    """The app for one server. ``cert_login``: the process has a client certificate; an empty token logs in as it."""
    logins = Logins(settings.session_idle_s)
    secure = bool(settings.cert_file)

    async def index(request: Request) -> Response:
        return FileResponse(f"{_static_dir()}/index.html", headers={"Cache-Control": "no-store"})

    async def login(request: Request) -> Response:
        if not _same_origin(request.headers.get("origin"), request.headers.get("host")):
            return JSONResponse({"error": "log in from the page itself (cross-site request refused)"}, 403)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "send JSON: {\"token\": \"NAME.SECRET\"}"}, 400)
        token = body.get("token", "") if isinstance(body, dict) else None
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            return JSONResponse({"error": "the token must be text (NAME.SECRET)"}, 400)
        token = token.strip()
        try:  # an empty token works where the server has auth off, or with this process's certificate
            you = await to_thread.run_sync(whoami, target, token)
        except Exception as exc:
            hint = "" if token or cert_login else " (enter your access token: `taggerhub user add` printed it)"
            return JSONResponse({"error": f"the server at {target.host}:{target.port} refused: {explain(exc)}{hint}"},
                                401)
        cookie = logins.add(Login(token=token, user=str(you["user"]), role=str(you["role"])))
        response = JSONResponse({"user": you["user"], "role": you["role"]})
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", secure=secure, path="/")
        return response

    async def logout(request: Request) -> Response:
        logins.remove(request.cookies.get(COOKIE))
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE, path="/")
        return response

    async def me(request: Request) -> Response:
        found = logins.get(request.cookies.get(COOKIE))
        if found is None:
            return JSONResponse({"error": "not logged in", "cert_login": cert_login}, 401)
        return JSONResponse({"user": found.user, "role": found.role})

    async def page(ws: WebSocket) -> None:
        found = logins.get(ws.cookies.get(COOKIE))
        if found is None or not _same_origin(ws.headers.get("origin"), ws.headers.get("host")):
            await ws.close(code=4401, reason="log in first")
            return
        await ws.accept()
        link = PageLink(target, found.token)
        try:
            await to_thread.run_sync(link.open)
        except Exception as exc:
            await ws.send_json({"type": "fatal", "message": f"cannot open the tagger: {explain(exc)}"})
            await ws.close(code=1011)
            return
        try:
            await PagePusher(ws, link, settings.update_hz).run()
        except Exception as exc:  # the server went away mid-page: say so, the page reconnects
            await _say_goodbye(ws, f"connection to the server lost: {explain(exc)}")
        finally:
            # Not awaited: a handler being cancelled (shutdown, a client gone mid-call) must still hang up,
            # or the page's server session and its measurements would live on.
            threading.Thread(target=link.close, name="taggerhub-web-close", daemon=True).start()

    routes: list[Any] = [
        Route("/", index),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        Route("/api/me", me),
        WebSocketRoute("/ws", page),
        Mount("/static", StaticFiles(directory=_static_dir()), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.logins = logins
    return app


async def _say_goodbye(ws: WebSocket, message: str) -> None:
    try:
        await ws.send_json({"type": "fatal", "message": message})
        await ws.close(code=1011)
    except Exception:  # the socket is already gone
        return
