"""Fixtures for remote-access tests; the machinery lives in ``netlab.py``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest


@pytest.fixture
def closing() -> Iterator:
    """Register things with a close() method; they are closed in reverse order, whatever happens."""
    things: list = []

    def keep(thing):
        things.append(thing)
        return thing

    yield keep
    for thing in reversed(things):
        with contextlib.suppress(Exception):
            thing.close()
