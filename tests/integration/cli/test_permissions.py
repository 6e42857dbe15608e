"""The permission table: derived by patterns, deny by default, and the copy in docs/security.md is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taggerhub.access.policy import Access, ObjectRef
from taggerhub.access.rules import ArgUse, Level, allowed, argument_use, level_of
from taggerhub.access.users import Role, UserStore
from taggerhub.config import Settings
from taggerhub.errors import AccessDenied
from taggerhub.server.sessions import Session

DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"


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
    table = subprocess.run([sys.executable, "-m", "taggerhub", "permissions", "--only", "calls"],
                           capture_output=True, text=True,
                           check=True).stdout
    assert table.startswith("| object | call |")
    assert table in DOC.read_text(), "docs/security.md is stale: paste `taggerhub permissions` into it"


def test_objects_passed_to_state_changing_calls_are_controlled_unless_listed():
    assert argument_use("synchronized", "registerMeasurement")[0] is ArgUse.control
    assert argument_use("synchronized", "unregisterMeasurement")[0] is ArgUse.release
    assert argument_use("library", "Countrate", is_constructor=True)[0] is ArgUse.attach
    assert argument_use("library", "freeTimeTagger")[0] is ArgUse.release
    assert argument_use("experiment", "addMeasurement")[0] is ArgUse.control  # a plugin's method: deny by default
    assert argument_use("tagger", "someNewVendorMethod")[0] is ArgUse.control


def _access(tmp_path: Path, enabled: bool) -> Access:
    settings = Settings()
    settings.auth.enabled = enabled
    settings.auth.users_file = str(tmp_path / "users.toml")
    store = UserStore(settings.auth.users_file)
    store.add("otto", "operator")
    store.add("olga", "operator")
    return Access(settings.auth, settings.limits, store)


@pytest.mark.parametrize("enabled", [True, False], ids=["auth on", "auth off"])
def test_a_call_changing_a_tagger_argument_respects_the_control_lease(tmp_path, enabled):
    access = _access(tmp_path, enabled)
    holder = Session(address="127.0.0.1:1", user="otto", role="operator", id="s1")
    other = Session(address="127.0.0.1:2", user="olga", role="operator", id="s2")
    tagger = ObjectRef("tagger", "TimeTagger obj_1", owner="s1")
    access.authorize_argument(other, "experiment", "retune", False, tagger)  # no lease: operators may
    access.lease.acquire("s1", "otto", "127.0.0.1:1", 30)
    with pytest.raises(AccessDenied, match=r"retune\(\) would change TimeTagger obj_1.*lease held by user 'otto'"):
        access.authorize_argument(other, "experiment", "retune", False, tagger)
    access.authorize_argument(holder, "experiment", "retune", False, tagger)
    access.authorize_argument(other, "experiment", "getState", False, tagger)  # reads only read their arguments
    access.authorize_argument(other, "library", "Countrate", True, tagger)  # attaching needs no lease
