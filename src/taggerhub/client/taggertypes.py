"""``TT.TimeTaggerBase``, ``TT.TimeTagger`` and ``TT.TimeTaggerVirtual`` on the library proxy.

Scripts written for the vendor's module name these classes in annotations
(``def __init__(self, tagger: TimeTagger.TimeTaggerBase)``, evaluated when the class is
defined) and in ``isinstance`` checks. Through a server there is no such class to hand out:
a tagger is a proxy. These stand-ins answer ``isinstance`` for both kinds of tagger a client
holds: a remote one (a proxy, told by a method only that kind of tagger has) and a local
one (the simulator's, as ``TT.createTimeTaggerVirtual()`` gives).
"""

from __future__ import annotations

from typing import Any

import Pyro5.client

from .. import sim

# A method that every tagger of the kind serves and the other kinds do not (see the simulator's classes).
_TELLING_METHOD = {"TimeTaggerBase": "getFence", "TimeTagger": "getSerial", "TimeTaggerVirtual": "replay"}
NAMES = frozenset(_TELLING_METHOD)


class _TaggerTypeMeta(type):
    _local: type
    _telling_method: str

    def __instancecheck__(cls, instance: Any) -> bool:
        if isinstance(instance, cls._local):
            return True
        return isinstance(instance, Pyro5.client.Proxy) and cls._telling_method in instance._pyroMethods

    def __repr__(cls) -> str:
        return f"<class 'TimeTagger.{cls.__name__}' (served)>"


def _tagger_type(name: str) -> type:
    return _TaggerTypeMeta(name, (), {
        "_local": getattr(sim, name), "_telling_method": _TELLING_METHOD[name],
        "__doc__": f"Stands for the vendor's {name} in annotations and isinstance(), remote or local.",
    })


TYPES = {name: _tagger_type(name) for name in _TELLING_METHOD}
