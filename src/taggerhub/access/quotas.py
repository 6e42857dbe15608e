"""Quotas: what one user may take from the shared server (objects, measurement memory, engine work).

One observer could create 10,000 measurements, or one ``Counter`` with 10^10
bins, and slow or crash the server for everyone. Limits come from ``[limits]``
(defaults for everyone) with ``overrides`` per role or per user, as PostgreSQL
sets limits per role. A measurement's memory is estimated from its arguments
(bins x channels x 8 bytes) *before* it is created and refused, naming the limit,
if it would pass the user's ``measurement_bytes`` or the server's
``memory_budget_bytes``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import ConfigError, LimitsSettings
from ..errors import AccessDenied

# Arguments that multiply a measurement's buffer: each one's value is a count of elements.
COUNT_PARAMETERS = ("n_values", "n_bins", "n_histograms", "n_bins_1", "n_bins_2", "n_max_events", "max_triggers")
LIST_COUNT_PARAMETERS = ("binedges",)  # a list whose length is a count of bins
CHANNEL_PARAMETERS = ("channels", "click_channels")  # one buffer row per channel
BYTES_PER_ELEMENT = 8  # int64 counts / timestamps
# Arguments that set how often the engine closes a bin: work per second of signal, whatever the memory.
BINWIDTH_PARAMETERS = {"Counter": "binwidth", "FrequencyCounter": "sampling_interval"}
PER_USER_FIELDS = ("max_objects", "max_measurements", "measurement_bytes", "min_binwidth_ps", "oneway_per_user",
                   "recording_bytes")
SERVER_ONLY_FIELDS = ("overrides", "roles", "users")  # not limits themselves: where the per-user ones come from


def parse_overrides(entries: Sequence[str], roles: Mapping[str, Mapping[str, Any]] | None = None,
                    users: Mapping[str, Mapping[str, Any]] | None = None) -> dict[tuple[str, str], dict[str, int]]:
    """``["role:observer.max_objects=200"]`` and ``[limits.roles.observer]`` tables -> {("role","observer"): {...}}.

    The same limit for the same role or user set both ways with different values is refused:
    which one wins would be a guess.
    """
    parsed = _parse_entries(entries)
    for kind, tables in (("role", roles or {}), ("user", users or {})):
        for name, fields in tables.items():
            for field, value in fields.items():
                where = f"[limits.{kind}s.{name}] {field}"
                if field not in PER_USER_FIELDS:
                    raise ConfigError(f"{where}: not a per-user limit (one of: {', '.join(PER_USER_FIELDS)})")
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigError(f"{where}: must be an integer, 0 (no limit) or more, got {value!r}")
                earlier = parsed.get((kind, name), {}).get(field)
                if earlier is not None and earlier != value:
                    raise ConfigError(f"{where} = {value} contradicts limits.overrides "
                                      f"'{kind}:{name}.{field}={earlier}'; keep one")
                parsed.setdefault((kind, name), {})[field] = value
    return parsed


def _parse_entries(entries: Sequence[str]) -> dict[tuple[str, str], dict[str, int]]:
    parsed: dict[tuple[str, str], dict[str, int]] = {}
    for entry in entries:
        where = f"limits.overrides entry {entry!r}"
        target, _, rest = entry.partition(".")
        kind, _, name = target.partition(":")
        field, eq, value = rest.partition("=")
        if kind not in ("role", "user") or not name or not eq:
            raise ConfigError(f"{where}: expected 'role:NAME.FIELD=VALUE' or 'user:NAME.FIELD=VALUE'")
        if field not in PER_USER_FIELDS:
            raise ConfigError(f"{where}: {field!r} is not a per-user limit (one of: {', '.join(PER_USER_FIELDS)})")
        try:
            number = int(float(value))
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a number") from None
        if number < 0:
            raise ConfigError(f"{where}: must be 0 (no limit) or more")
        parsed.setdefault((kind, name), {})[field] = number
    return parsed


def _bound_arguments(cls: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The constructor's arguments by name (the tagger left out); {} if the signature cannot be read."""
    try:
        bound = inspect.signature(cls).bind_partial(None, *args, **kwargs)
    except (TypeError, ValueError):
        return dict(kwargs)
    return dict(bound.arguments)


def estimate_bytes(cls: Any, args: tuple, kwargs: dict) -> tuple[int, str]:
    """The memory a measurement will allocate for its buffers, from its arguments, and how it was reckoned."""
    named = _bound_arguments(cls, args, kwargs)
    factors: list[str] = []
    total = BYTES_PER_ELEMENT
    for name in COUNT_PARAMETERS + LIST_COUNT_PARAMETERS + CHANNEL_PARAMETERS:
        value = named.get(name)
        if value is None:
            continue
        count = len(value) if isinstance(value, list | tuple) else value
        if isinstance(count, bool) or not isinstance(count, int | float) or not math.isfinite(count):
            continue
        count = max(1, int(count))
        factors.append(f"{name}={'len ' if isinstance(value, list | tuple) else ''}{count}")
        total *= count
    return total, " x ".join([*factors, f"{BYTES_PER_ELEMENT} bytes"])


@dataclasses.dataclass
class Usage:
    """What one user holds now (for hub_sessions)."""

    objects: int = 0
    measurements: int = 0
    measurement_bytes: int = 0


class Quotas:
    """Checks and books each user's objects and measurement memory; frees the booking with the object."""

    def __init__(self, limits: LimitsSettings):
        self.defaults = limits
        self.overrides = parse_overrides(limits.overrides, limits.roles, limits.users)
        self._lock = threading.Lock()
        self._usage: dict[str, Usage] = {}
        self._booked: dict[int, tuple[str, int]] = {}  # id(adapter) -> (user, bytes)
        self.total_bytes = 0
        self.total_measurements = 0

    def limit(self, user: str, role: str, field: str) -> int:
        """The limit ``field`` for ``user`` with ``role``: user override, else role override, else default."""
        for key in (("user", user), ("role", role)):
            value = self.overrides.get(key, {}).get(field)
            if value is not None:
                return value
        return int(getattr(self.defaults, field))

    def usage(self, user: str) -> Usage:
        with self._lock:
            found = self._usage.get(user, Usage())
            return dataclasses.replace(found)

    def usage_row(self, quota_user: str, user: str, role: str) -> dict[str, int]:
        """What ``quota_user`` holds beside ``user``'s limits (0: none), as hub_sessions shows it."""
        used = self.usage(quota_user)
        return {
            "objects": used.objects, "max_objects": self.limit(user, role, "max_objects"),
            "measurements": used.measurements, "max_measurements": self.limit(user, role, "max_measurements"),
            "measurement_bytes": used.measurement_bytes,
            "max_measurement_bytes": self.limit(user, role, "measurement_bytes"),
            "server_measurement_bytes": self.total_bytes,
            "memory_budget_bytes": self.defaults.memory_budget_bytes,
        }

    def check_measurement(self, user: str, role: str, class_name: str, cls: Any, args: tuple,
                          kwargs: dict) -> int:
        """Raise AccessDenied naming the limit if this measurement is too big or too fine; return its bytes."""
        named = _bound_arguments(cls, args, kwargs)
        width_name = BINWIDTH_PARAMETERS.get(class_name)
        width = named.get(width_name) if width_name else None
        minimum = self.limit(user, role, "min_binwidth_ps")
        if minimum and isinstance(width, int | float) and 0 < width < minimum:
            raise AccessDenied(f"{class_name}({width_name}={width}): below limits.min_binwidth_ps={minimum} for "
                               f"user {user!r} (each bin is engine work, every second the measurement runs); "
                               "an admin can lower it (docs/security.md, Limits)")
        estimated, how = estimate_bytes(cls, args, kwargs)
        allowed = self.limit(user, role, "measurement_bytes")
        if allowed and estimated > allowed:
            raise AccessDenied(f"{class_name}() would allocate about {_size(estimated)} ({how}), over "
                               f"limits.measurement_bytes={allowed} ({_size(allowed)}) for user {user!r}")
        budget = self.defaults.memory_budget_bytes
        running = self.limit(user, role, "max_measurements")
        engine_budget = self.defaults.measurements_budget
        with self._lock:
            held = self._usage.get(user, Usage()).measurements
            if running and held >= running:
                raise AccessDenied(f"user {user!r} already has {held} live measurements (limits.max_measurements="
                                   f"{running}): each one is engine work while it runs, and stays on the server "
                                   "while your script holds it, until its tagger is freed or you disconnect (with "
                                   "the vendor's client also when your script dropped it: a new measurement made in "
                                   "a loop); free some (del, freeTimeTagger, or disconnect), reuse one (clear(), "
                                   "startFor()), or ask an admin to raise the limit")
            if engine_budget and self.total_measurements >= engine_budget:
                raise AccessDenied(f"{class_name}(): the server already runs {self.total_measurements} measurements "
                                   f"(limits.measurements_budget={engine_budget}, all users together)")
            if budget and self.total_bytes + estimated > budget:
                raise AccessDenied(f"{class_name}() would allocate about {_size(estimated)} ({how}); the server's "
                                   f"measurements already hold {_size(self.total_bytes)} of "
                                   f"limits.memory_budget_bytes={budget} ({_size(budget)})")
        return estimated

    def check_objects(self, user: str, role: str) -> None:
        """Raise AccessDenied naming ``limits.max_objects`` if ``user`` may not own one more object."""
        allowed = self.limit(user, role, "max_objects")
        with self._lock:
            owned = self._usage.get(user, Usage()).objects
        if allowed and owned >= allowed:
            raise AccessDenied(f"user {user!r} already owns {owned} server objects (limits.max_objects={allowed}); "
                               "free some (freeTimeTagger, or disconnect) or ask an admin to raise the limit")

    def book(self, key: int, user: str, role: str, nbytes: int) -> None:
        """Count a new object (and its estimated bytes) against ``user``; raise AccessDenied past max_objects.

        Only measurements come with an estimate (at least one element's bytes), so ``nbytes > 0``
        is what counts an object as a measurement too.
        """
        self.check_objects(user, role)
        measurement = int(nbytes > 0)
        with self._lock:
            usage = self._usage.setdefault(user, Usage())
            usage.objects += 1
            usage.measurements += measurement
            usage.measurement_bytes += nbytes
            self.total_bytes += nbytes
            self.total_measurements += measurement
            self._booked[key] = (user, nbytes)

    def release(self, key: int) -> None:
        with self._lock:
            found = self._booked.pop(key, None)
            if found is None:
                return
            user, nbytes = found
            usage = self._usage.get(user)
            measurement = int(nbytes > 0)
            if usage is not None:
                usage.objects -= 1
                usage.measurements -= measurement
                usage.measurement_bytes -= nbytes
                if usage.objects <= 0:
                    del self._usage[user]
            self.total_bytes -= nbytes
            self.total_measurements -= measurement

    def describe(self) -> list[dict[str, Any]]:
        """Every limit with its default and overrides, for `taggerhub permissions` and the docs."""
        rows = [{"limit": f.name, "default": getattr(self.defaults, f.name),
                 "overrides": {f"{k}:{n}": v[f.name] for (k, n), v in sorted(self.overrides.items()) if f.name in v}}
                for f in dataclasses.fields(self.defaults) if f.name not in SERVER_ONLY_FIELDS]
        return rows


def _size(nbytes: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024  # type: ignore[assignment]
    return str(nbytes)
