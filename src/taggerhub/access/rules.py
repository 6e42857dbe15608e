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

from ..backend.adapter import BackendApi, public_attributes
from ..backend.kinds import MEASUREMENT_KINDS, ObjectKind
from .levels import MIN_ROLE, STATE_CHANGING, Level, allowed
from .surface import SERVER_CALL_NAMES, SERVER_CALLS

__all__ = ["MIN_ROLE", "STATE_CHANGING", "ArgUse", "Level", "Rule", "allowed", "level_of", "markdown", "table"]


@dataclass(frozen=True)
class Rule:
    kinds: tuple[ObjectKind, ...]
    pattern: str  # fnmatch pattern on the method name
    level: Level
    why: str = ""


MEASUREMENT = MEASUREMENT_KINDS
LIBRARY = (ObjectKind.library,)

RULES: tuple[Rule, ...] = (
    # Explicit exceptions first.
    Rule((ObjectKind.tagger,), "getOverflowsAndClear", Level.setting,
         "reads but also resets the device's overflow counter"),
    Rule((ObjectKind.tagger,), "getFence", Level.read, "only marks a point in the stream for this caller"),
    Rule((ObjectKind.tagger,), "waitForFence", Level.read, "waits, changes nothing"),
    Rule(MEASUREMENT, "waitUntilFinished", Level.read, "waits, changes nothing"),
    Rule(MEASUREMENT, "ready", Level.read, "says whether data is complete"),
    Rule(MEASUREMENT, "triggered", Level.read, "counts triggers seen"),
    Rule(MEASUREMENT, "frameReady", Level.admin, "a callback the engine calls for each frame, not for clients"),
    Rule(MEASUREMENT, "initialize", Level.own, "starts the measurement"),
    Rule(MEASUREMENT, "trigger", Level.own, "emits a tag into the creator's virtual channel"),
    Rule(MEASUREMENT, "injectCurrentState", Level.own, "emits a tag into the creator's virtual channel"),
    Rule(MEASUREMENT, "split", Level.own, "a FileWriter goes on in a new file of its creator's folder"),
    Rule(MEASUREMENT, "setMaxFileSize", Level.own, "sets when a FileWriter starts its next file"),
    Rule((ObjectKind.tagger,), "xtra_measureTriggerLevel", Level.read, "measures the threshold, changes nothing"),
    Rule((ObjectKind.tagger,), "xtra_get*", Level.read, "reads a hidden setting"),
    Rule((ObjectKind.tagger,), "xtra_set*", Level.setting, "changes a hidden device setting"),
    Rule((ObjectKind.tagger,), "waitForCompletion", Level.read, "waits for a replay, changes nothing"),
    Rule((ObjectKind.tagger,), "waitUntilFinished", Level.read, "waits for a replay, changes nothing"),
    Rule((ObjectKind.tagger,), "replay", Level.setting, "decides what the virtual tagger emits"),
    Rule((ObjectKind.tagger,), "appendFile", Level.setting, "decides what the virtual tagger emits"),
    Rule((ObjectKind.tagger,), "run", Level.setting, "decides what the virtual tagger emits"),
    Rule((ObjectKind.tagger,), "stop", Level.setting, "stops the virtual tagger's replay for everyone"),
    # The server's own calls, from the one table in surface.py.
    *(Rule(LIBRARY, call.name, call.level, call.why) for call in SERVER_CALLS),
    Rule(LIBRARY, "getVersion", Level.read, ""),
    Rule(LIBRARY, "scanTimeTagger", Level.read, ""),
    Rule(LIBRARY, "<measurement class>", Level.create, "the new measurement belongs to its creator"),
    Rule(LIBRARY, "get*", Level.read, "library queries: versions, models, the channel number scheme"),
    Rule((ObjectKind.experiment,), "get*", Level.read, "experiment plugins: reads"),
    Rule((ObjectKind.experiment,), "is*", Level.read, "experiment plugins: reads"),
    Rule((ObjectKind.experiment,), "wait*", Level.read, "experiment plugins: waits, changes nothing"),
    Rule((ObjectKind.experiment,), "*", Level.own, "experiment plugins: every other method controls the experiment"),
    # Patterns.
    Rule((ObjectKind.tagger, *MEASUREMENT), "get*", Level.read),
    Rule((ObjectKind.tagger, *MEASUREMENT), "is*", Level.read),
    Rule((ObjectKind.tagger,), "set*", Level.setting),
    Rule((ObjectKind.tagger,), "clear*", Level.setting),
    Rule((ObjectKind.tagger,), "reset*", Level.setting),
    Rule((ObjectKind.tagger,), "sync", Level.setting),
    Rule((ObjectKind.tagger,), "autoCalibration", Level.setting),
    Rule((ObjectKind.tagger,), "disable*", Level.setting),
    Rule((ObjectKind.tagger,), "enable*", Level.setting),
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
    kinds: tuple[ObjectKind, ...]  # kind of the called object, as in Rule
    pattern: str
    use: ArgUse
    why: str = ""


ANY_KIND = (ObjectKind.library, ObjectKind.tagger, ObjectKind.experiment, *MEASUREMENT)

# Objects passed to a state-changing call: explicit uses first, then "control" for everything else (deny by
# default, so a call that drives an object it was handed never does so for someone who may not drive it).
ARGUMENT_RULES: tuple[ArgRule, ...] = (
    ArgRule((ObjectKind.library,), "<measurement class>", ArgUse.attach,
            "the new measurement reads the tagger; made on a group's tagger it joins that group"),
    ArgRule((ObjectKind.library,), "experiment", ArgUse.attach, "as for a measurement"),
    ArgRule((ObjectKind.library,), "hub_stream_open", ArgUse.attach, "a tag stream is a measurement on the tagger"),
    ArgRule((ObjectKind.library,), "FileWriter", ArgUse.attach, "a recording is a measurement on the tagger"),
    ArgRule((ObjectKind.library,), "freeTimeTagger", ArgUse.release, "ends the caller's use (an admin's: everyone's)"),
    ArgRule((ObjectKind.synchronized,), "unregisterMeasurement", ArgUse.release,
            "only takes it out of the caller's group; the measurement itself is not changed"),
    ArgRule(ANY_KIND, "*", ArgUse.control,
            "e.g. registerMeasurement: the group's start/stop/clear then drive the measurement"),
)

# What "changing it directly" needs, by the kind of the argument object.
ARGUMENT_LEVEL = {ObjectKind.tagger: Level.setting, ObjectKind.iterator: Level.own, ObjectKind.synchronized: Level.own,
                  ObjectKind.result: Level.own, ObjectKind.experiment: Level.own}


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


def table(api: BackendApi, extra_library: tuple[str, ...] = ()) -> Iterator[tuple[str, str, Level, str]]:
    """Every served (class, method) with its level and why, for the docs."""
    names = sorted({*api.functions, *SERVER_CALL_NAMES, *extra_library})
    for name in names:
        level, rule = level_of(ObjectKind.library, name)
        yield "TimeTaggerRPC", name, level, _why(rule)
    for name in sorted([*api.iterator_classes, *(["SynchronizedMeasurements"] if api.sync_class else [])]):
        level, rule = level_of(ObjectKind.library, name, is_constructor=True)
        yield "TimeTaggerRPC", f"{name}(...)", level, _why(rule)
    for pattern in EXPERIMENT_PATTERNS:  # plugins differ per lab: their methods are classified by name
        level, rule = level_of(ObjectKind.experiment, pattern)
        yield "Experiment (plugin)", pattern, level, _why(rule)
    for cls in sorted(api.backend_classes, key=lambda c: c.__name__):
        kind = _kind_of_class(api, cls)
        if kind is None:
            continue
        for attr in public_attributes(cls):
            if attr.kind in ("method", "class method", "static method", "property") or inspect.isdatadescriptor(
                    attr.object):
                level, rule = level_of(kind, attr.name)
                yield cls.__name__, attr.name, level, _why(rule)


EXPERIMENT_PATTERNS = ("get*", "is*", "wait*", "any other method")


def _kind_of_class(api: BackendApi, cls: type) -> ObjectKind | None:
    if issubclass(cls, api.tagger_base):
        return ObjectKind.tagger if cls is not api.tagger_base else None
    if issubclass(cls, api.iterator_base):
        return ObjectKind.iterator if cls.__name__ in api.iterator_classes else None
    if api.sync_class is not None and cls is api.sync_class:
        return ObjectKind.synchronized
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
    kinds = {ObjectKind.library: "TimeTaggerRPC", ObjectKind.tagger: "TimeTagger", ObjectKind.iterator: "measurement",
             ObjectKind.synchronized: "SynchronizedMeasurements", ObjectKind.result: "result",
             ObjectKind.experiment: "experiment"}
    lines = ["| calls on | call | argument use | the caller needs, for each object argument | why |",
             "|---|---|---|---|---|"]
    for rule in ARGUMENT_RULES:
        on = ", ".join(kinds[k] for k in rule.kinds) if rule.kinds != ANY_KIND else "any object"
        name = "any state-changing call" if rule.pattern == "*" else f"`{rule.pattern}`"
        lines.append(f"| {on} | {name} | {rule.use.value} | {needs[rule.use]} | {rule.why} |")
    return "\n".join(lines) + "\n"

