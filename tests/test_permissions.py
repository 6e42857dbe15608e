"""The permission table: derived by patterns, deny by default, and the copy in docs/security.md is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from taggerhub.auth import Role
from taggerhub.permissions import Level, allowed, level_of

DOC = Path(__file__).resolve().parents[1] / "docs" / "security.md"


def test_levels_by_pattern_with_exceptions_and_deny_by_default():
    assert level_of("tagger", "getTriggerLevel")[0] is Level.read
    assert level_of("tagger", "setTriggerLevel")[0] is Level.setting
    assert level_of("tagger", "getOverflowsAndClear")[0] is Level.setting  # exception before get*
    assert level_of("iterator", "stop")[0] is Level.own
    assert level_of("library", "Counter", is_constructor=True)[0] is Level.create
    assert level_of("tagger", "someNewVendorMethod") == (Level.admin, None)
    assert level_of("library", "load_lab")[0] is Level.admin
    assert not allowed(Role.observer, Level.setting) and allowed(Role.operator, Level.setting)
    assert not allowed(Role.operator, Level.admin) and allowed(Role.admin, Level.admin)


def test_docs_hold_the_current_table():
    table = subprocess.run([sys.executable, "-m", "taggerhub", "permissions"], capture_output=True, text=True,
                           check=True).stdout
    assert table.startswith("| object | call |")
    assert table in DOC.read_text(), "docs/security.md is stale: paste `taggerhub permissions` into it"
