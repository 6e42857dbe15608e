"""The audit log: one JSON object per line, appended, for connections, refusals and state-changing calls.

The file is opened in append mode and each event written with one ``write``
call under a lock, so lines never interleave; nothing in taggerhub rewrites it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

MAX_ARG_CHARS = 200


def summarize(args: tuple, kwargs: dict) -> str:
    """A short, bounded text for call arguments (proxies by their object id, arrays by shape)."""
    parts = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= MAX_ARG_CHARS else text[: MAX_ARG_CHARS - 3] + "..."


def _short(value: Any) -> str:
    uri = getattr(value, "_pyroUri", None)
    if uri is not None:
        return f"<{uri.object}>"
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"<array {tuple(shape)}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class AuditLog:
    """Append-only JSON-lines file; a no-op when no path is configured."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._file = None
        if path:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._file = os.fdopen(fd, "a", buffering=1)

    def write(self, event: str, **fields: Any) -> None:
        if self._file is None:
            return
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z",
                  "event": event, **fields}
        line = json.dumps(record, default=str) + "\n"
        with self._lock:
            self._file.write(line)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
