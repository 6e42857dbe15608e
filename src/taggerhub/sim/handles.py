"""What measurements and virtual channels may use of their tagger, named without importing it.

``TimeTaggerBase`` provides all of this; the modules built on top of the tagger
(iterators, virtual channels, the clock recovery) annotate with this protocol so
that the tagger can build on them in turn without an import circle.
"""

from __future__ import annotations

from typing import Any, Protocol

from .engine import TagEngine


class TaggerHandle(Protocol):
    _engine: TagEngine
    _lock: Any

    def _attach(self, iterator: Any) -> None: ...

    def _detach(self, iterator: Any) -> None: ...

    def _check_channel(self, channel: int, physical: bool = False) -> int: ...

    def _allocate_virtual_channel(self) -> int: ...

    def sync(self, timeout: int = -1) -> bool: ...
