"""The ``taggerhub`` command: one module per command group, assembled in :mod:`.main`."""

from .main import main

__all__ = ["main"]
