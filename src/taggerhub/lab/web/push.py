"""The push loop of one open page: rates at ``update_hz``, the rest less often, commands in between.

One :class:`PageLink` per WebSocket: the page's server session opens with the socket
and ends with it, so the server frees the page's measurements when the tab closes.
RPCs block, so each runs on a worker thread; one lock keeps a page's calls in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from anyio import to_thread
from starlette.websockets import WebSocket, WebSocketDisconnect

from .link import PageLink

log = logging.getLogger("taggerhub.web")
SLOW_EVERY_S = 1.0  # status and sessions (the lease's countdown)
SETTINGS_EVERY_S = 3.0  # others' changes; the page's own show at once
HISTOGRAM_EVERY_S = 0.5


PAGE_CONNECTIONS = 1  # a page's server session needs one connection (link.Remote), its live histogram one more


def explain(exc: BaseException) -> str:
    """The message a user should read: the server's own words for refusals and bad input."""
    text = str(exc) or type(exc).__name__
    if "max_connections_per_user" in text:  # what the user can do about it here, in the browser
        text += (f"; each open page uses {PAGE_CONNECTIONS} connection, {PAGE_CONNECTIONS + 1} with a live "
                 "histogram: close pages (or stop their histograms) you no longer need")
    if isinstance(exc, PermissionError):
        return f"refused by the server: {text}"
    return text


class PagePusher:
    """Runs one page: sends what changed, answers the page's commands."""

    def __init__(self, ws: WebSocket, link: PageLink, update_hz: float):
        self.ws = ws
        self.link = link
        self.period = 1.0 / update_hz
        self._lock = asyncio.Lock()
        self._send_lock = asyncio.Lock()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._lock:
            return await to_thread.run_sync(fn, *args)

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_json(message)

    async def run(self) -> None:
        link = self.link
        await self.send({"type": "hello", "user": link.you.get("user"), "role": link.you.get("role"),
                         "session": link.you.get("session"), "serial": link.serial, "model": link.model,
                         "channels": link.channels, "update_hz": 1.0 / self.period})
        await self._slow()
        tasks = [asyncio.create_task(self._ticks()), asyncio.create_task(self._commands())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None and not isinstance(exc, WebSocketDisconnect):
                    raise exc
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task

    async def _slow(self, settings: bool = True) -> None:
        status = await self.call(self.link.status)
        await self.send({"type": "status", **status})
        if settings:
            await self.send({"type": "settings", "channels": await self.call(self.link.settings)})

    async def _ticks(self) -> None:
        """Rates every period (on a fixed schedule, so a slow tick does not push the next ones back)."""
        next_tick = time.monotonic()
        next_slow = next_tick + SLOW_EVERY_S
        next_settings = next_tick + SETTINGS_EVERY_S
        next_hist = next_tick
        while True:
            next_tick += self.period
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            now = time.monotonic()
            if now - next_tick > self.period:  # fell behind: skip ticks rather than burst
                next_tick = now
            rates = await self.call(self.link.rates)
            if rates["rates"] is not None:
                await self.send({"type": "rates", **rates})
            if now >= next_hist:
                next_hist = now + HISTOGRAM_EVERY_S
                hist = await self.call(self.link.histogram)
                if hist is not None:
                    await self.send({"type": "histogram", **hist})
            if now >= next_slow:
                next_slow = now + SLOW_EVERY_S
                settings = now >= next_settings
                if settings:
                    next_settings = now + SETTINGS_EVERY_S
                await self._slow(settings)

    async def _commands(self) -> None:
        while True:
            message = await self.ws.receive_json()
            await self._answer(message if isinstance(message, dict) else {})

    async def _answer(self, message: dict[str, Any]) -> None:
        op, ident = message.get("op"), message.get("id")
        handlers: dict[str, Callable[[], Awaitable[Any]]] = {
            "set": lambda: self.call(self.link.change, message.get("channel"), message.get("name"),
                                     message.get("value")),
            "lease": lambda: self.call(self.link.lease, message.get("action"), message.get("seconds", 60)),
            "histogram": lambda: self.call(self.link.start_histogram, message.get("kind"), message.get("click"),
                                           message.get("start"), message.get("binwidth_ps"), message.get("bins")),
            "stop_histogram": lambda: self.call(self.link.stop_histogram),
        }
        handler = handlers.get(str(op))
        if handler is None:
            await self.send({"type": "result", "id": ident, "op": op, "ok": False,
                             "message": f"unknown command {op!r}; one of {', '.join(handlers)}"})
            return
        try:
            value = await handler()
        except Exception as exc:  # the page shows it; the next command goes on
            log.info("page command failed", extra={"op": op, "user": self.link.you.get("user"), "error": str(exc)})
            await self.send({"type": "result", "id": ident, "op": op, "ok": False, "message": explain(exc)})
            return
        await self.send({"type": "result", "id": ident, "op": op, "ok": True, "value": value})
        if op in ("set", "lease"):
            await self._slow()  # show the effect now, not at the next slow tick
