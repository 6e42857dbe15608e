"""``taggerhub config --dump``: the settings in effect and which layer set each one.

Settings come from four layers (defaults, the TOML file, ``TAGGERHUB_*``
variables, options); when a value is not what an admin expects, the question is
which layer won. The dump answers it, as TOML with the source after each value.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from ..config import ENV_PREFIX, Settings, settings_file, trace_settings
from ._options import config_option

HIDDEN = "(hidden)"


def _is_secret(key: str) -> bool:
    """Tokens are never printed: a dump gets pasted into tickets and chats."""
    return key.endswith("token")


def _toml_value(key: str, value: Any) -> str:
    """One value as TOML (JSON spells str, int, float, bool and lists the same way)."""
    if _is_secret(key) and value:
        return json.dumps(HIDDEN)
    if isinstance(value, dict):  # an inline table: { observer = { max_objects = 100 } }
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(k, v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def dump(settings: Settings, sources: dict[str, str]) -> str:
    """Every setting, section by section, each with ``# default``, ``# FILE`` or ``# VARIABLE`` after it."""
    lines = ["# taggerhub settings in effect; after each value, where it came from:",
             "# default, the settings file, an environment variable or a command-line option."]
    for section_field in dataclasses.fields(settings):
        name = section_field.name
        section = getattr(settings, name)
        rows = [(f"{f.name} = {_toml_value(f.name, getattr(section, f.name))}",
                 sources.get(f"{name}.{f.name}", "default")) for f in dataclasses.fields(section)]
        width = max(len(text) for text, _ in rows)
        lines += ["", f"[{name}]", *(f"{text:{width}}  # {source}" for text, source in rows)]
    return "\n".join(lines) + "\n"


def cmd_config(args: argparse.Namespace) -> int:
    """Print the dump (the only action so far; ``--dump`` keeps room for others)."""
    if not args.dump:
        args.parser.error("say what to do: --dump")
    settings, sources = trace_settings(args.config)
    path = settings_file(args.config)
    origin = "--config" if args.config else f"${ENV_PREFIX}CONFIG"
    print(f"# settings file: {f'{path} (from {origin})' if path else 'none (no --config, no $TAGGERHUB_CONFIG)'}")
    print(dump(settings, sources), end="")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser("config", help="show the settings in effect and where each value came from",
                            description="Show the settings a taggerhub process started here would use: "
                                        "defaults, overridden by the settings file, overridden by TAGGERHUB_* "
                                        "environment variables. Tokens are hidden.")
    config.add_argument("--dump", action="store_true",
                        help="print every setting as TOML, each with its source (default, file or variable)")
    config_option(config, "the file a server here would read")
    config.set_defaults(func=cmd_config, parser=config)
