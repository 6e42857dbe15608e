"""Which remote call needs which role: one table, derived from the served API by name patterns.

Every call is classified into a :class:`Level`; the first matching rule wins,
explicit exceptions come before the patterns, and a name no rule matches needs
``admin`` (deny by default, so a new vendor method is never open by accident).
``taggerhub permissions`` prints the
table for the served backend; ``docs/security.md`` holds that output.
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import inspect
from collections.abc import Iterator
from dataclasses import dataclass

from ..backend.adapter import BackendApi, _public_attributes
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


@dataclass(frozen=True)
class Rule:
    kinds: tuple[str, ...]  # "library", "tagger", "iterator", "synchronized", "result"
    pattern: str  # fnmatch pattern on the method name
    level: Level
    why: str = ""


MEASUREMENT = ("iterator", "synchronized", "result")

RULES: tuple[Rule, ...] = (
    # Explicit exceptions first.
    Rule(("tagger",), "getOverflowsAndClear", Level.setting, "reads but also resets the device's overflow counter"),
    Rule(("tagger",), "getFence", Level.read, "only marks a point in the stream for this caller"),
    Rule(("tagger",), "waitForFence", Level.read, "waits, changes nothing"),
    Rule(MEASUREMENT, "waitUntilFinished", Level.read, "waits, changes nothing"),
    Rule(("library",), "createTimeTagger", Level.read, "hands out the shared, already open device"),
    Rule(("library",), "freeTimeTagger", Level.free, "admins free the device for everyone, others their use"),
    Rule(("library",), "acquireControl", Level.lease, "exclusive right to change device settings"),
    Rule(("library",), "releaseControl", Level.lease, ""),
    Rule(("library",), "hub_sessions", Level.admin, "lists every client"),
    Rule(("library",), "hub_end_session", Level.admin, "disconnects a client"),
    Rule(("library",), "hub_*", Level.read, "server status and metrics"),
    Rule(("library",), "enum_definitions", Level.read, ""),
    Rule(("library",), "getVersion", Level.read, ""),
    Rule(("library",), "scanTimeTagger", Level.read, ""),
    Rule(("library",), "<measurement class>", Level.create, "the new measurement belongs to its creator"),
    Rule(("library",), "experiment", Level.create, "the new server-side experiment belongs to its creator"),
    Rule(("library",), "experiments", Level.read, "lists the experiment plugins offered"),
    Rule(("experiment",), "get*", Level.read, "experiment plugins: reads"),
    Rule(("experiment",), "is*", Level.read, "experiment plugins: reads"),
    Rule(("experiment",), "wait*", Level.read, "experiment plugins: waits, changes nothing"),
    Rule(("experiment",), "*", Level.own, "experiment plugins: every other method controls the experiment"),
    # Patterns.
    Rule(("tagger", *MEASUREMENT), "get*", Level.read),
    Rule(("tagger", *MEASUREMENT), "is*", Level.read),
    Rule(("tagger",), "set*", Level.setting),
    Rule(("tagger",), "clear*", Level.setting),
    Rule(("tagger",), "reset*", Level.setting),
    Rule(("tagger",), "sync", Level.setting),
    Rule(("tagger",), "autoCalibration", Level.setting),
    Rule(("tagger",), "disable*", Level.setting),
    Rule(("tagger",), "enable*", Level.setting),
    Rule(MEASUREMENT, "start*", Level.own),
    Rule(MEASUREMENT, "stop", Level.own),
    Rule(MEASUREMENT, "clear", Level.own),
    Rule(MEASUREMENT, "abort", Level.own),
    Rule(MEASUREMENT, "set*", Level.own),
    Rule(MEASUREMENT, "registerMeasurement", Level.own),
    Rule(MEASUREMENT, "unregisterMeasurement", Level.own),
)


class ArgUse(enum.Enum):
    """What a state-changing call does to a server object passed to it as an argument."""

    control = "control"  # may change it: needs what changing it directly needs
    attach = "attach"  # builds something new on it (a measurement on a tagger; on a group's tagger: joins the group)
    release = "release"  # only lets go of it (the caller's own use, or its place in the caller's group)


@dataclass(frozen=True)
class ArgRule:
    kinds: tuple[str, ...]  # kind of the called object, as in Rule
    pattern: str
    use: ArgUse
    why: str = ""


ANY_KIND = ("library", "tagger", "experiment", *MEASUREMENT)

# Objects passed to a state-changing call: explicit uses first, then "control" for everything else (deny by
# default, so a call that drives an object it was handed never does so for someone who may not drive it).
ARGUMENT_RULES: tuple[ArgRule, ...] = (
    ArgRule(("library",), "<measurement class>", ArgUse.attach,
            "the new measurement reads the tagger; made on a group's tagger it joins that group"),
    ArgRule(("library",), "experiment", ArgUse.attach, "as for a measurement"),
    ArgRule(("library",), "freeTimeTagger", ArgUse.release, "ends the caller's use (an admin's: everyone's)"),
    ArgRule(("synchronized",), "unregisterMeasurement", ArgUse.release,
            "only takes it out of the caller's group; the measurement itself is not changed"),
    ArgRule(ANY_KIND, "*", ArgUse.control,
            "e.g. registerMeasurement: the group's start/stop/clear then drive the measurement"),
)

# What "changing it directly" needs, by the kind of the argument object.
ARGUMENT_LEVEL = {"tagger": Level.setting, "iterator": Level.own, "synchronized": Level.own,
                  "result": Level.own, "experiment": Level.own}


@functools.lru_cache(maxsize=4096)
def argument_use(kind: str, method: str, is_constructor: bool = False) -> tuple[ArgUse, ArgRule]:
    """How ``method`` on an object of ``kind`` uses server objects passed as arguments, and the rule."""
    name = "<measurement class>" if is_constructor else method
    for rule in ARGUMENT_RULES:
        if kind in rule.kinds and fnmatch.fnmatchcase(name, rule.pattern):
            return rule.use, rule
    raise AssertionError("the last argument rule matches everything")  # pragma: no cover


@functools.lru_cache(maxsize=4096)  # names come from the served API: a bounded set
def level_of(kind: str, method: str, is_constructor: bool = False) -> tuple[Level, Rule | None]:
    """The level of ``method`` on an object of ``kind``, and the rule that decided it."""
    name = "<measurement class>" if is_constructor else method
    for rule in RULES:
        if kind in rule.kinds and fnmatch.fnmatchcase(name, rule.pattern):
            return rule.level, rule
    return Level.admin, None


@functools.lru_cache(maxsize=4096)
def requirement(kind: str, method: str, is_constructor: bool = False) -> tuple[Level, int]:
    """The call's level and the lowest role allowed, as an int: the per-call check, without enum hashing."""
    level = level_of(kind, method, is_constructor)[0]
    return level, int(MIN_ROLE[level])


def allowed(role: Role, level: Level) -> bool:
    return role >= MIN_ROLE[level]


def table(api: BackendApi, extra_library: tuple[str, ...] = ()) -> Iterator[tuple[str, str, Level, str]]:
    """Every served (class, method) with its level and why, for the docs."""
    names = sorted({*api.functions, "createTimeTagger", "freeTimeTagger", *extra_library})
    for name in names:
        level, rule = level_of("library", name)
        yield "TimeTaggerRPC", name, level, _why(rule)
    for name in sorted([*api.iterator_classes, *(["SynchronizedMeasurements"] if api.sync_class else [])]):
        level, rule = level_of("library", name, is_constructor=True)
        yield "TimeTaggerRPC", f"{name}(...)", level, _why(rule)
    for pattern in EXPERIMENT_PATTERNS:  # plugins differ per lab: their methods are classified by name
        level, rule = level_of("experiment", pattern)
        yield "Experiment (plugin)", pattern, level, _why(rule)
    for cls in sorted(api.backend_classes, key=lambda c: c.__name__):
        kind = _kind_of_class(api, cls)
        if kind is None:
            continue
        for attr in _public_attributes(cls):
            if attr.kind in ("method", "class method", "static method", "property") or inspect.isdatadescriptor(
                    attr.object):
                level, rule = level_of(kind, attr.name)
                yield cls.__name__, attr.name, level, _why(rule)


EXPERIMENT_PATTERNS = ("get*", "is*", "wait*", "any other method")


def _kind_of_class(api: BackendApi, cls: type) -> str | None:
    if issubclass(cls, api.tagger_base):
        return "tagger" if cls is not api.tagger_base else None
    if issubclass(cls, api.iterator_base):
        return "iterator" if cls.__name__ in api.iterator_classes else None
    if api.sync_class is not None and cls is api.sync_class:
        return "synchronized"
    return None


def _why(rule: Rule | None) -> str:
    if rule is None:
        return "no rule matches: admin only by default"
    return rule.why or f"pattern `{rule.pattern}`"


def markdown(api: BackendApi, extra_library: tuple[str, ...] = ()) -> str:
    """The permission table as Markdown, for docs/security.md."""
    who = {
        Level.read: "everyone", Level.own: "creator, admin", Level.create: "everyone",
        Level.setting: "operator, admin (lease holder only while a lease is held)",
        Level.lease: "operator, admin", Level.free: "everyone (admin: frees for all)", Level.admin: "admin",
    }
    lines = ["| object | call | level | who may call | why |", "|---|---|---|---|---|"]
    for owner, name, level, why in table(api, extra_library):
        lines.append(f"| {owner} | `{name}` | {level.value} | {who[level]} | {why} |")
    return "\n".join(lines) + "\n\n" + argument_markdown()


def argument_markdown() -> str:
    """The rules for server objects passed as arguments, as Markdown."""
    needs = {
        ArgUse.control: "a measurement, group or experiment: its creator or an admin; a tagger: operator or "
                        "admin, and the control lease",
        ArgUse.attach: "nothing more; a group's tagger (`getTagger()`): the group's creator or an admin",
        ArgUse.release: "nothing more",
    }
    kinds = {"library": "TimeTaggerRPC", "tagger": "TimeTagger", "iterator": "measurement",
             "synchronized": "SynchronizedMeasurements", "result": "result", "experiment": "experiment"}
    lines = ["| calls on | call | argument use | the caller needs, for each object argument | why |",
             "|---|---|---|---|---|"]
    for rule in ARGUMENT_RULES:
        on = ", ".join(kinds[k] for k in rule.kinds) if rule.kinds != ANY_KIND else "any object"
        name = "any state-changing call" if rule.pattern == "*" else f"`{rule.pattern}`"
        lines.append(f"| {on} | {name} | {rule.use.value} | {needs[rule.use]} | {rule.why} |")
    return "\n".join(lines) + "\n"

