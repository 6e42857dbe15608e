"""What a call does (its :class:`Level`) and the lowest role that may make it."""

from __future__ import annotations

import enum

from .users import Role


class Level(enum.Enum):
    """What a call does, which decides who may make it."""

    read = "read"  # reads state: anyone
    own = "own"  # controls one measurement: its creator (any role) and admins
    create = "create"  # makes a new measurement owned by the caller: anyone
    setting = "setting"  # changes the shared device: operator and up, and respects the control lease
    lease = "lease"  # takes or gives back the control lease: operator and up
    free = "free"  # freeTimeTagger: releases the caller's use; an admin's frees the device for everyone
    admin = "admin"  # server administration and anything unclassified


MIN_ROLE = {
    Level.read: Role.observer, Level.own: Role.observer, Level.create: Role.observer,
    Level.setting: Role.operator, Level.lease: Role.operator, Level.free: Role.observer,
    Level.admin: Role.admin,
}
STATE_CHANGING = frozenset({Level.own, Level.create, Level.setting, Level.lease, Level.free, Level.admin})


def allowed(role: Role, level: Level) -> bool:
    return role >= MIN_ROLE[level]
