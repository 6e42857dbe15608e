"""Choose the backend module: the built-in simulator or the vendor's Time Tagger library.

Both are plain modules with the vendor's public names; everything above this
layer reflects over whichever one is returned and never imports either directly.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..config import SimulatorSettings
from ..errors import BackendUnavailable

VENDOR_MODULES = ("Swabian.TimeTagger", "TimeTagger")


def load_vendor_library() -> ModuleType:
    """Import the vendor library under either of its names, or explain how to get it."""
    problems = []
    for name in VENDOR_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            problems.append(f"{name}: {exc}")
    raise BackendUnavailable(
        "the hardware backend needs the vendor library: pip install 'taggerhub[hardware]' "
        "(PyPI swabian-timetagger); tried " + "; ".join(problems)
    )


def load_simulator(settings: SimulatorSettings) -> ModuleType:
    """Configure and return the simulator module."""
    from .. import sim

    sim.configure(settings.config_file or None, clock=settings.clock, seed=settings.seed or None)
    return sim


def load_backend(name: str, simulator: SimulatorSettings) -> ModuleType:
    """Return the backend module for ``name`` ("simulator" or "hardware")."""
    if name == "simulator":
        return load_simulator(simulator)
    if name == "hardware":
        return load_vendor_library()
    raise BackendUnavailable(f"unknown backend {name!r}: choose 'simulator' or 'hardware'")
