"""Reflection over a backend module: what is reachable remotely, and the Pyro-exposed adapters.

The backend (simulator or vendor library) is classified once: tagger classes,
measurement and virtual-channel classes, ``SynchronizedMeasurements``, enums,
result classes and module functions. For each class an adapter class is
generated whose public methods mirror the backend's (names, docstrings and
signatures copied) and route every call through a :class:`CallGate`, which the
server layer provides: it checks permissions, resolves proxies passed as
arguments, records who uses what and wraps results. Only names that pass the
allow-list are generated, so adapter internals (``_obj``), dunder attributes and
module objects are never reachable over the wire.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

import Pyro5.api

from ..wire.pyro_compat import object_id_of
from .kinds import ObjectKind

# Module members never served: they act on the server process or its files globally.
EXCLUDED_MODULE_MEMBERS = frozenset({
    "TimeTaggerBase", "IteratorBase", "Iterator", "FlimAbstract", "CustomMeasurement",
    "CustomMeasurementBase", "CustomMeasurementBase_stop_all_custom_measurements",
    "TimeTaggerVirtual", "createTimeTaggerVirtual", "TimeTaggerNetwork", "createTimeTaggerNetwork",
    "TimeTaggerHardware", "TimeTaggerSource", "TimeTaggerServer", "FileReader", "FileWriter", "Dump",
    "setLogger", "CustomLogger", "setCustomBitFileName", "hasTimeTaggerVirtualLicense", "setFrontend",
    "setLanguageInfo", "flashLicense", "extractDeviceLicense", "addSearchPath", "checkSystemLibraries",
    "mergeStreamFiles", "setTimeTaggerChannelNumberScheme", "setUsageStatisticsStatus",
    "addUsageStatisticsFrontendData", "getUsageStatisticsReport", "scanTimeTaggerServers",
    "getTimeTaggerServerInfo", "SwigPyIterator", "configure", "Experimental",
    "createTimeTagger", "freeTimeTagger",  # served by the library adapter itself, shared-device aware
})

# Methods never served on any object: SWIG internals, firmware and licence access, network servers.
EXCLUDED_METHODS = frozenset({
    "thisown", "factoryAccess", "startServer", "stopServer", "setServerAddress", "updateBMCFirmware",
    "fetchDeviceLicenseUpdate", "getDeviceLicense", "setTimeTaggerNetworkStreamCompression",
    "enableFpgaLink", "disableFpgaLink", "xtra_enableStreamInterfaceUDP", "xtra_disableStreamInterfaceUDP",
})


class CallGate(Protocol):
    """What adapters need from the server: one door for every remote call."""

    def call(self, target: Adapter, method: str, args: tuple | None, kwargs: dict) -> Any:
        """Call ``method`` on the target's backend object; ``args`` None reads an attribute instead."""
        ...

    def construct(self, library: Adapter, class_name: str, args: tuple, kwargs: dict) -> Any: ...

    def library_call(self, library: Adapter, name: str, args: tuple, kwargs: dict) -> Any: ...


class Adapter:
    """Base of generated adapters. Attributes with a leading underscore are never exposed."""

    _backend_class: type | None = None
    _entry: Any = None  # the object table's record while the adapter is served

    def __init__(self, obj: Any, gate: CallGate, kind: ObjectKind, parent: Adapter | None = None):
        self._obj = obj
        self._gate = gate
        self._kind = kind
        self._parent = parent

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {object_id_of(self, '?')}>"

    # The object table's hooks (names start with "_": never exposed remotely).
    def _bind(self, entry: Any) -> None:
        """Served from now on: keep the table's record, so a use is recorded without a lookup."""
        self._entry = entry

    def _unbind(self) -> None:
        """No longer served: further calls find no record and fail as freed."""
        self._entry = None

    def _drop_object(self) -> None:
        """The backend object was released: forget it, so a late call fails cleanly instead of using it."""
        self._obj = None


def public_attributes(cls: type) -> list[inspect.Attribute]:
    return [
        a for a in inspect.classify_class_attrs(cls)
        if not a.name.startswith("_") and a.name not in EXCLUDED_METHODS and a.defining_class is not object
    ]


def _copy_metadata(wrapper: Callable, original: Any, name: str) -> None:
    wrapper.__name__ = name
    wrapper.__qualname__ = name
    wrapper.__doc__ = inspect.getdoc(original)
    with contextlib.suppress(TypeError, ValueError):  # some builtins have no signature
        wrapper.__signature__ = inspect.signature(original)  # type: ignore[attr-defined]


def method_proxy(attr: inspect.Attribute) -> Callable:
    name = attr.name

    def method(self: Adapter, *args: Any, **kwargs: Any) -> Any:
        return self._gate.call(self, name, args, kwargs)

    _copy_metadata(method, attr.object, name)
    return method


def _property_proxy(attr: inspect.Attribute) -> property:
    name = attr.name

    def fget(self: Adapter) -> Any:
        return self._gate.call(self, name, None, {})  # args None: read the attribute, do not call it

    return property(fget, doc=inspect.getdoc(attr.object))


class BackendApi:
    """The classified public surface of one backend module."""

    def __init__(self, module: ModuleType):
        self.module = module
        self.name = module.__name__
        base_tagger = module.TimeTaggerBase
        base_iterator = module.IteratorBase
        sync_class = getattr(module, "SynchronizedMeasurements", None)
        self.tagger_base: type = base_tagger
        self.iterator_base: type = base_iterator
        self.sync_class: type | None = sync_class
        self.iterator_classes: dict[str, type] = {}
        self.functions: dict[str, Callable] = {}
        self.enums: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {}
        self.backend_classes: list[type] = []
        self.constants: dict[str, int | float | str] = {}
        for name, member in inspect.getmembers(module):
            if name.startswith("_"):
                continue
            if type(member) in (int, float, str) and name not in EXCLUDED_MODULE_MEMBERS:
                self.constants[name] = member  # CHANNEL_UNUSED, TT_CHANNEL_FALLING_EDGES, Resolution_Standard...
                continue
            if inspect.isclass(member):
                if issubclass(member, enum.Enum):
                    members = tuple((m.name, m.value) for m in member)
                    if members:
                        kind = next(b.__name__ for b in member.__mro__[1:] if b.__module__ == "enum")
                        self.enums[name] = (kind, members)
                    continue
                self.backend_classes.append(member)
                if name not in EXCLUDED_MODULE_MEMBERS and issubclass(member, base_iterator):
                    self.iterator_classes[name] = member
            elif (inspect.isfunction(member) or inspect.isbuiltin(member)) and name not in EXCLUDED_MODULE_MEMBERS:
                self.functions[name] = member
        self._adapter_classes: dict[type, type[Adapter]] = {}
        self.backend_types = tuple(self.backend_classes)

    def is_backend_object(self, value: Any) -> bool:
        """Whether ``value`` must be served as a remote object rather than copied."""
        return isinstance(value, self.backend_types) and not isinstance(value, enum.Enum)

    def kind_of(self, obj: Any) -> ObjectKind:
        if isinstance(obj, self.tagger_base):
            return ObjectKind.tagger
        if isinstance(obj, self.iterator_base):
            return ObjectKind.iterator
        if self.sync_class is not None and isinstance(obj, self.sync_class):
            return ObjectKind.synchronized
        return ObjectKind.result

    def adapter_class(self, cls: type) -> type[Adapter]:
        """The exposed adapter class mirroring backend class ``cls`` (built once)."""
        cached = self._adapter_classes.get(cls)
        if cached is not None:
            return cached
        attributes: dict[str, Any] = {"_backend_class": cls, "__doc__": inspect.getdoc(cls)}
        for attr in public_attributes(cls):
            if attr.kind in ("method", "class method", "static method"):
                attributes[attr.name] = method_proxy(attr)
            elif attr.kind == "property" or inspect.isdatadescriptor(attr.object):
                attributes[attr.name] = _property_proxy(attr)
        adapter_cls = type(cls.__name__, (Adapter,), attributes)
        Pyro5.api.expose(adapter_cls)
        self._adapter_classes[cls] = adapter_cls
        return adapter_cls

    def wrap(self, obj: Any, gate: CallGate, parent: Adapter | None = None) -> Adapter:
        return self.adapter_class(type(obj))(obj, gate, self.kind_of(obj), parent)

    def enum_definitions(self) -> dict[str, tuple[str, tuple[tuple[str, int], ...]]]:
        """Enums in the vendor TimeTaggerRPC wire format: {name: (enum type, ((member, value), ...))}."""
        return dict(self.enums)

    def library_adapter_class(self, extra: dict[str, Callable] | None = None) -> type[Adapter]:
        """The entry-point class served as ``TimeTaggerRPC``: constructors and module functions.

        ``extra`` maps server-side method names (not in the backend) to functions documenting them.
        """
        attributes: dict[str, Any] = {"__doc__": inspect.getdoc(self.module)}

        def make_constructor(class_name: str, cls: type) -> Callable:
            def constructor(self: Adapter, *args: Any, **kwargs: Any) -> Any:
                return self._gate.construct(self, class_name, args, kwargs)

            _copy_metadata(constructor, cls.__init__, class_name)
            constructor.__doc__ = inspect.getdoc(cls) or constructor.__doc__
            return constructor

        def make_function(name: str, func: Callable) -> Callable:
            def function(self: Adapter, *args: Any, **kwargs: Any) -> Any:
                return self._gate.library_call(self, name, args, kwargs)

            _copy_metadata(function, func, name)
            return function

        for name, cls in self.iterator_classes.items():
            attributes[name] = make_constructor(name, cls)
        if self.sync_class is not None:
            attributes["SynchronizedMeasurements"] = make_constructor("SynchronizedMeasurements", self.sync_class)
        for name, func in self.functions.items():
            attributes[name] = make_function(name, func)
        for name in ("createTimeTagger", "freeTimeTagger"):
            attributes[name] = make_function(name, getattr(self.module, name))
        for name, documented in (extra or {}).items():
            attributes[name] = make_function(name, documented)
        library_cls = type("TimeTaggerRPC", (Adapter,), attributes)
        Pyro5.api.expose(library_cls)
        return library_cls
