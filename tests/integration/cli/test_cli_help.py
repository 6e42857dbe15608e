"""`taggerhub --help` and every subcommand's help: written for users, every option explained."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from taggerhub.cli import main
from taggerhub.cli.main import build_parser


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command parser with the words that reach it, the top level first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, (*path, name))


ALL = list(commands(build_parser()))
IDS = [" ".join(path) or "taggerhub" for path, _ in ALL]


def test_the_installed_command_prints_a_user_facing_description() -> None:
    result = subprocess.run([sys.executable, "-m", "taggerhub", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Time Tagger" in result.stdout and "config --dump" in result.stdout
    assert "`" not in result.stdout and ":mod:" not in result.stdout  # no RST from a developer docstring


@pytest.mark.parametrize(("path", "parser"), ALL, ids=IDS)
def test_every_command_has_help_and_every_option_says_what_it_does(path, parser, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: taggerhub {' '.join(path)}".rstrip())
    assert "`" not in text
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"taggerhub {' '.join(path)} {name}: no help text"
        shown = action.default not in (None, False, [], argparse.SUPPRESS)
        if shown and not action.required:
            assert "default" in action.help, f"taggerhub {' '.join(path)} {name}: default {action.default!r} not shown"


def test_subcommands_named_in_the_brief_show_their_defaults(capsys) -> None:
    for path, option, default in ((("status",), "--port", "23000"), (("sessions",), "--host", "localhost"),
                                  (("certs", "client"), "--days", "825"), (("exporter",), "--log-level", "INFO")):
        with pytest.raises(SystemExit):
            main([*path, "--help"])
        text = " ".join(capsys.readouterr().out.split("options:", 1)[1].split())
        line = text[text.index(f"{option} "):]
        assert f"default: {default}" in line[:200] or f"else {default}" in line[:200], (path, option)
