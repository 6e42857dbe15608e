"""Serving experiment objects: the exposed adapter class and the guard that keeps results plain.

The adapter mirrors the plugin's public methods (not the base class helpers,
not properties) and routes each through the server's call gate like any
measurement, as kind ``experiment``. Its backend object is an
:class:`ExperimentGuard`: every value a plugin returns is checked to be plain
data, so no backend object (and no server internals) ever leaves through an
experiment.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import Pyro5.api

from ..backend.adapter import Adapter, method_proxy, public_attributes
from . import BASE_HELPERS, Experiment

PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes, np.generic)
_adapter_classes: dict[type, type[Adapter]] = {}


def check_plain(value: Any, where: str, depth: int = 0) -> Any:
    """Return ``value`` if it is plain data, else raise TypeError naming ``where``."""
    if isinstance(value, PLAIN_SCALARS):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"{where} returned a numpy array of Python objects; experiments return plain data")
        return value
    if depth < 20 and isinstance(value, list | tuple):
        for item in value:
            check_plain(item, where, depth + 1)
        return value
    if depth < 20 and isinstance(value, dict):
        for key, item in value.items():
            check_plain(key, where, depth + 1)
            check_plain(item, where, depth + 1)
        return value
    raise TypeError(f"{where} returned a {type(value).__module__}.{type(value).__name__}; experiments return "
                    "plain data (numbers, strings, numpy arrays, lists and dicts of those), never backend objects")


class ExperimentGuard:
    """Stands in for the plugin instance behind the adapter: forwards calls, checks what comes back."""

    def __init__(self, name: str, experiment: Experiment):
        self._name = name
        self._experiment = experiment

    def __getattr__(self, method: str) -> Callable[..., Any]:
        target = getattr(self._experiment, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            return check_plain(target(*args, **kwargs), f"experiment {self._name!r} {method}()")

        return call

    def taggerhub_close(self) -> None:
        self._experiment.close()


def served_methods(cls: type[Experiment]) -> list[inspect.Attribute]:
    """The plugin's public methods that clients may call."""
    return [a for a in public_attributes(cls)
            if a.kind in ("method", "class method", "static method") and a.name not in BASE_HELPERS]


def adapter_class(cls: type[Experiment]) -> type[Adapter]:
    """The exposed adapter class for experiment class ``cls`` (built once)."""
    cached = _adapter_classes.get(cls)
    if cached is not None:
        return cached
    attributes: dict[str, Any] = {"__doc__": inspect.getdoc(cls)}
    for attr in served_methods(cls):
        attributes[attr.name] = method_proxy(attr)
    adapter_cls = type(f"Experiment_{cls.__name__}", (Adapter,), attributes)
    Pyro5.api.expose(adapter_cls)
    _adapter_classes[cls] = adapter_cls
    return adapter_cls
