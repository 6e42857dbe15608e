"""Finding experiment plugins: entry points and the plugin folder, with errors kept per plugin.

A plugin that fails to import, or is not an :class:`~taggerhub.experiments.Experiment`
subclass, does not stop the server: its error (naming the file or entry point)
is logged, listed by ``TT.experiments()`` and raised to whoever asks for it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ExperimentSettings
from . import ENTRY_POINT_GROUP, Experiment

log = logging.getLogger("taggerhub.experiments")


@dataclass
class Catalog:
    """The experiments a server offers, and the plugins that could not be loaded."""

    classes: dict[str, type[Experiment]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # name -> "entry point ..." or file path
    errors: dict[str, str] = field(default_factory=dict)  # name or file -> what went wrong

    def get(self, name: str) -> type[Experiment]:
        """The class for ``name``; LookupError (a built-in, so it reaches every client) says why not."""
        cls = self.classes.get(name)
        if cls is not None:
            return cls
        problem = self.errors.get(name) or next(
            (msg for key, msg in self.errors.items() if Path(key).stem == name), None)
        if problem:
            raise LookupError(f"experiment {name!r} is not available: {problem}")
        raise LookupError(f"unknown experiment {name!r}; this server offers: "
                                    f"{', '.join(sorted(self.classes)) or 'none'}")

    def describe(self) -> dict[str, object]:
        """What ``TT.experiments()`` returns: name -> source and summary, plus load errors."""
        return {
            "experiments": {
                name: {"source": self.sources[name], "doc": (inspect.getdoc(cls) or "").split("\n\n")[0]}
                for name, cls in sorted(self.classes.items())
            },
            "errors": dict(sorted(self.errors.items())),
        }

    def _add(self, name: str, cls: object, source: str) -> None:
        if not (inspect.isclass(cls) and issubclass(cls, Experiment)):
            self.errors[name] = f"{source}: {cls!r} is not a subclass of taggerhub.experiments.Experiment"
        elif name in self.classes:
            self.errors[name] = f"{source}: name {name!r} is already taken by {self.sources[name]}"
        else:
            self.classes[name] = cls
            self.sources[name] = source


def load_catalog(settings: ExperimentSettings) -> Catalog:
    """Every experiment from entry points and the plugin folder, filtered by ``enabled``."""
    catalog = Catalog()
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {entry.name} = {entry.value}"
        try:
            cls = entry.load()
        except Exception as exc:  # a broken plugin must not take the server down
            catalog.errors[entry.name] = f"{source}: {_describe(exc)}"
            continue
        catalog._add(entry.name, cls, source)
    if settings.plugin_dir:
        _load_folder(catalog, Path(settings.plugin_dir))
    if settings.enabled:
        for name in settings.enabled:
            if name not in catalog.classes and name not in catalog.errors:
                catalog.errors[name] = ("listed in experiments.enabled but no plugin provides it "
                                        f"(found: {', '.join(sorted(catalog.classes)) or 'none'})")
        for name in [n for n in catalog.classes if n not in settings.enabled]:
            del catalog.classes[name], catalog.sources[name]
    for key, problem in catalog.errors.items():
        log.error("experiment plugin not loaded", extra={"plugin": key, "error": problem})
    if catalog.classes:
        log.info("experiments offered", extra={"experiments": sorted(catalog.classes)})
    return catalog


def _load_folder(catalog: Catalog, folder: Path) -> None:
    if not folder.is_dir():
        catalog.errors[str(folder)] = f"experiments.plugin_dir {str(folder)!r} is not a folder"
        return
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module_name = f"taggerhub_plugins.{path.stem}"
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # dataclasses and pickling look the module up
            spec.loader.exec_module(module)
        except BaseException as exc:  # SyntaxError, ImportError, even SystemExit at import time
            sys.modules.pop(module_name, None)
            catalog.errors[str(path)] = f"{path}: {_describe(exc, path)}"
            continue
        found = [c for c in vars(module).values()
                 if inspect.isclass(c) and issubclass(c, Experiment) and c is not Experiment
                 and c.__module__ == module_name]
        if not found:
            catalog.errors[str(path)] = f"{path}: defines no subclass of taggerhub.experiments.Experiment"
        for cls in found:
            name = cls.name or path.stem
            catalog._add(name, cls, str(path))


def _describe(exc: BaseException, path: Path | None = None) -> str:
    """The error and, when known, the plugin file's line it came from."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if path is None or f.filename == str(path)]
    where = f" (line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
