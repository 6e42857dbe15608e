"""Every public name of the served library has a rule, and no read is kept from observers without a reason."""

from __future__ import annotations

import fnmatch
from types import ModuleType

import pytest

from taggerhub.access.levels import Level
from taggerhub.access.rules import table
from taggerhub.backend.adapter import BackendApi
from taggerhub.backend.loader import load_simulator, load_vendor_library
from taggerhub.config import SimulatorSettings

READ_LOOKING = ("get*", "is*", "wait*", "ready", "triggered")


def _libraries() -> list[ModuleType]:
    return [load_vendor_library(), load_simulator(SimulatorSettings())]


@pytest.mark.parametrize("library", _libraries(), ids=lambda m: m.__name__)
def test_every_public_name_is_classified_by_a_rule(library: ModuleType) -> None:
    unclassified = [f"{owner}.{name}" for owner, name, _level, why in table(BackendApi(library))
                    if why.startswith("no rule matches")]
    assert not unclassified, "classify these (from their docstrings) in access/rules.py:\n" + "\n".join(unclassified)


@pytest.mark.parametrize("library", _libraries(), ids=lambda m: m.__name__)
def test_no_read_looking_call_is_kept_from_observers_without_a_reason(library: ModuleType) -> None:
    kept = [f"{owner}.{name} ({level.value})" for owner, name, level, why in table(BackendApi(library))
            if any(fnmatch.fnmatchcase(name, p) for p in READ_LOOKING)
            and level not in (Level.read, Level.own, Level.create) and why.startswith("pattern")]
    assert not kept, "reads above observer need a stated reason:\n" + "\n".join(kept)


def test_state_changing_reads_are_not_open_to_observers() -> None:
    rows = {(owner, name): level for owner, name, level, _ in table(BackendApi(load_vendor_library()))}
    assert rows[("TimeTagger", "getOverflowsAndClear")] is Level.setting  # reads, but also resets
    assert rows[("TimeTagger", "xtra_setFanSpeed")] is Level.setting
    assert rows[("TimeTaggerRPC", "getTimeTaggerModel")] is Level.read
