"""The exclusive control lease: while one session holds it, only that session changes device settings.

A lease has an end time; it ends early when its holder gives it back or
disconnects. Holding it never stops others from reading.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import AccessDenied

MAX_LEASE_S = 24 * 3600.0


@dataclass
class Holder:
    session_id: str
    user: str
    address: str
    until: float  # on the lease's clock

    def describe(self, now: float) -> str:
        left = max(0.0, self.until - now)
        return f"user {self.user!r} (session {self.session_id}, {self.address}), {left:.0f} s left"


class ControlLease:
    """One lease for the served device(s)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # injected so that tests can let a lease run out without waiting
        self._lock = threading.Lock()
        self._holder: Holder | None = None

    def _current(self) -> Holder | None:
        if self._holder is not None and self._clock() >= self._holder.until:
            self._holder = None
        return self._holder

    def held(self) -> bool:
        """Cheap check for the per-call path: is (or was, until expiry is noticed) a lease taken?"""
        return self._holder is not None

    def holder(self) -> Holder | None:
        with self._lock:
            return self._current()

    def state(self) -> dict[str, object] | None:
        """Who holds the lease and for how much longer, as plain data: ``hub_status`` shows it to everyone.

        The holder is no secret: a refused setting call names it anyway. The address is left out.
        """
        with self._lock:
            current = self._current()
            if current is None:
                return None
            return {"user": current.user, "session": current.session_id,
                    "seconds_left": max(0.0, current.until - self._clock())}

    def acquire(self, session_id: str, user: str, address: str, timeout_s: float) -> float:
        """Take (or renew) the lease for ``timeout_s`` seconds; return the seconds granted."""
        if not isinstance(timeout_s, int | float) or isinstance(timeout_s, bool) or not 0 < timeout_s <= MAX_LEASE_S:
            raise ValueError(f"acquireControl(timeout_s): expected seconds in (0, {MAX_LEASE_S:.0f}], "
                             f"got {timeout_s!r}")
        with self._lock:
            current = self._current()
            if current is not None and current.session_id != session_id:
                raise AccessDenied(f"control lease is held by {current.describe(self._clock())}")
            self._holder = Holder(session_id, user, address, self._clock() + float(timeout_s))
            return float(timeout_s)

    def release(self, session_id: str, force: bool = False) -> bool:
        """Give the lease back; return whether this session (or, forced, anyone) held it."""
        with self._lock:
            current = self._current()
            if current is None:
                return False
            if current.session_id != session_id and not force:
                raise AccessDenied(f"control lease is held by {current.describe(self._clock())}, not by you")
            self._holder = None
            return True

    def check(self, session_id: str) -> None:
        """Raise AccessDenied if another session holds the lease."""
        with self._lock:
            current = self._current()
        if current is not None and current.session_id != session_id:
            raise AccessDenied(f"device settings are locked: control lease held by {current.describe(self._clock())}")

    def drop(self, session_id: str) -> bool:
        """The session is gone: end its lease if it held one."""
        with self._lock:
            if self._holder is not None and self._holder.session_id == session_id:
                self._holder = None
                return True
            return False
