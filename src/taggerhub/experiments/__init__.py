"""Server-side experiments: lab code that runs next to the tagger and is served like a measurement.

A plugin is a subclass of :class:`Experiment`, registered under a name as a
Python entry point in group ``taggerhub.experiments`` or found in the plugin
folder of ``[experiments] plugin_dir``. The server builds it with a narrow API:
the backend module, the shared tagger and the client's keyword parameters. It
creates measurements on that tagger itself and answers remote calls with plain
data (numbers, strings, numpy arrays, lists and dicts of those), never with
backend objects. Methods named ``get*``, ``is*`` and ``wait*`` are reads
(anyone); every other public method controls the experiment (its creator and
admins), as for measurements.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any

ENTRY_POINT_GROUP = "taggerhub.experiments"


class Experiment:
    """Base class of experiment plugins.

    Subclasses set ``name`` (the name clients ask for) and implement their
    public methods; :meth:`measurement` creates backend measurements that are
    freed with the experiment. ``backend``, ``tagger`` and ``params`` are not
    reachable remotely: only methods defined by the plugin class are served.
    """

    name: str = ""

    def __init__(self, backend: ModuleType, tagger: Any, **params: Any):
        self.backend = backend
        self.tagger = tagger
        self.params = params
        self._owned: list[Any] = []

    def measurement(self, class_name: str, *args: Any, tagger: Any = None, **kwargs: Any) -> Any:
        """Create backend measurement ``class_name`` on the tagger (or ``tagger``); freed with the experiment."""
        cls = getattr(self.backend, class_name, None)
        if cls is None:
            raise AttributeError(f"the backend has no measurement class {class_name!r}")
        obj = cls(tagger if tagger is not None else self.tagger, *args, **kwargs)
        self._owned.append(obj)
        return obj

    def close(self) -> None:
        """Stop what this experiment created; called when the server frees it."""
        for obj in reversed(self._owned):
            with contextlib.suppress(Exception):  # already stopped or detached
                obj.stop()
            release = getattr(obj, "_release", None)  # the simulator detaches at once; the vendor's on GC
            if release is not None:
                with contextlib.suppress(Exception):
                    release()
        self._owned.clear()


# Helpers of the base class that are never served, whatever a plugin does.
BASE_HELPERS = frozenset({"measurement", "close"})

__all__ = ["BASE_HELPERS", "ENTRY_POINT_GROUP", "Experiment"]
