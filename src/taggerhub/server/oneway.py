"""One-way calls on a bounded number of threads, per connection, per user and for the whole server.

Pyro5 starts a new thread for every one-way call (``pyro_compat.ONEWAY_CALL_CLASS``), so one
client could start thousands (3,000 one-way ``waitUntilFinished`` made 3,013
threads) until the process cannot start any more. Here a one-way call runs on a
fixed pool (``limits.oneway_threads``) while its connection and user are under
``limits.oneway_per_connection`` and ``limits.oneway_per_user``; past those it runs
on the connection's own thread, so that connection reads nothing more until it is
done (TCP back-pressure on the sender), and no new thread is ever started for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from Pyro5.callcontext import current_context

from ..config import LimitsSettings
from ..wire import pyro_compat

log = logging.getLogger("taggerhub.server")


class OnewayCalls:
    """Runs one-way calls within the configured concurrency limits; counts what waited in line."""

    def __init__(self, limits: LimitsSettings):
        self.per_connection = max(1, limits.oneway_per_connection)
        self.per_user = max(1, limits.oneway_per_user)
        self.threads = max(1, limits.oneway_threads)
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="taggerhub-oneway")
        self._lock = threading.Lock()
        self._running = 0
        self._by_connection: dict[int, int] = {}
        self._by_user: dict[str, int] = {}
        self.inline = 0  # calls that ran on their connection's thread because a limit was reached
        self._warned: set[str] = set()

    def running_of(self, user: str) -> int:
        with self._lock:
            return self._by_user.get(user, 0)

    def _reserve(self, conn_key: int, user: str) -> bool:
        with self._lock:
            if (self._running >= self.threads or self._by_connection.get(conn_key, 0) >= self.per_connection
                    or self._by_user.get(user, 0) >= self.per_user):
                self.inline += 1
                return False
            self._running += 1
            self._by_connection[conn_key] = self._by_connection.get(conn_key, 0) + 1
            self._by_user[user] = self._by_user.get(user, 0) + 1
            return True

    def _release(self, conn_key: int, user: str) -> None:
        with self._lock:
            self._running -= 1
            _decrement(self._by_connection, conn_key)
            _decrement(self._by_user, user)

    def run(self, call: Callable[[], Any], on_error: Callable[[Exception], None]) -> None:
        """Run ``call`` (a one-way call of the current connection) on the pool, or inline past a limit."""
        conn = current_context.client
        session = getattr(conn, "taggerhub_session", None)
        user = session.user if session is not None else "?"
        conn_key = id(conn)
        if not self._reserve(conn_key, user):
            self._warn_once(user, "one-way call limit reached: calls of this connection now run one at a time")
            self._invoke(call, on_error)
            return
        context = current_context.to_global()

        def job() -> None:
            current_context.from_global(context)
            try:
                self._invoke(call, on_error)
            finally:
                self._release(conn_key, user)

        try:
            self._pool.submit(job)
        except RuntimeError as exc:  # no thread could be started, or the pool is shut down
            self._release(conn_key, user)
            self._warn_once("threads", f"one-way call run inline: {exc}")
            self._invoke(call, on_error)

    @staticmethod
    def _invoke(call: Callable[[], Any], on_error: Callable[[Exception], None]) -> None:
        try:
            call()
        except Exception as exc:
            on_error(exc)

    def _warn_once(self, key: str, message: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        log.warning(message, extra={"user": key, "oneway_per_connection": self.per_connection,
                                    "oneway_per_user": self.per_user, "oneway_threads": self.threads})

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _decrement(table: dict[Any, int], key: Any) -> None:
    left = table.get(key, 0) - 1
    if left > 0:
        table[key] = left
    else:
        table.pop(key, None)


class BoundedOnewayCall:
    """Stands in for Pyro5's one-way call thread (``pyro_compat.install_oneway_call_class``).

    Same constructor; ``start()`` hands the call to the daemon's pool instead of a new thread.
    """

    def __init__(self, pyro_method: Any, vargs: Any, kwargs: Any, pyro_daemon: Any, pyro_client_sock: Any):
        self.method, self.vargs, self.kwargs = pyro_method, vargs, kwargs
        self.daemon, self.client_sock = pyro_daemon, pyro_client_sock

    def start(self) -> None:
        def on_error(exc: Exception) -> None:
            self.daemon.methodcall_error_handler(self.daemon, self.client_sock, self.method, self.vargs, self.kwargs,
                                                 exc)

        oneway: OnewayCalls | None = getattr(self.daemon, "oneway", None)
        if oneway is None:  # not a hub daemon: run inline rather than start a thread
            OnewayCalls._invoke(lambda: self.method(*self.vargs, **self.kwargs), on_error)
            return
        oneway.run(lambda: self.method(*self.vargs, **self.kwargs), on_error)


def install() -> None:
    """Make Pyro5's request handling use :class:`BoundedOnewayCall` (process-wide, like Pyro5's config)."""
    pyro_compat.install_oneway_call_class(BoundedOnewayCall)
