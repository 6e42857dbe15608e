"""One parse of Python source at a time in this process: a CPython 3.11/3.12 race, worked around.

CPython keeps the AST constructor's recursion depth in per-interpreter state, so two threads in
``ast.parse`` at once can fail with ``SystemError: AST constructor recursion depth mismatch``
(python/cpython gh-106905 and follow-ups). ``traceback`` calls ``ast.parse`` to place its carets,
so a server whose worker threads format exceptions while another thread does the same (or pytest
reports a failure) may turn one error report into a crash of another thread. A lock around
``ast.parse`` costs nothing measurable: parsing happens only when an error is formatted.
"""

from __future__ import annotations

import ast
import sys
import threading
from typing import Any

_LOCK = threading.RLock()
_original_parse = ast.parse


def _parse_one_at_a_time(*args: Any, **kwargs: Any) -> Any:
    with _LOCK:
        return _original_parse(*args, **kwargs)


def serialize_ast_parse() -> None:
    """Make ``ast.parse`` take a process-wide lock (idempotent; only on the affected versions)."""
    if sys.version_info[:2] in ((3, 11), (3, 12)) and ast.parse is _original_parse:
        ast.parse = _parse_one_at_a_time
