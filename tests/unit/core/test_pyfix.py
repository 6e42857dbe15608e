"""ast.parse one thread at a time (CPython 3.11/3.12 race in the AST constructor, see taggerhub.pyfix)."""

from __future__ import annotations

import ast
import threading
import time

from taggerhub import pyfix


def test_parse_is_serialized_and_gives_the_same_tree(monkeypatch) -> None:
    pyfix.serialize_ast_parse()
    pyfix.serialize_ast_parse()  # idempotent: one wrapper, not two
    assert ast.parse is pyfix._parse_one_at_a_time
    assert ast.dump(ast.parse("a[1] + f(x)")) == ast.dump(pyfix._original_parse("a[1] + f(x)"))

    inside, release = threading.Event(), threading.Event()
    real = pyfix._original_parse
    overlapped = []

    def slow_parse(*args, **kwargs):
        overlapped.append(inside.is_set())
        inside.set()
        release.wait(5)
        inside.clear()
        return real(*args, **kwargs)

    monkeypatch.setattr(pyfix, "_original_parse", slow_parse)
    threads = [threading.Thread(target=ast.parse, args=("x + 1",)) for _ in range(3)]
    for thread in threads:
        thread.start()
    assert inside.wait(5)
    time.sleep(0.2)  # the others are now waiting on the lock, not parsing
    assert overlapped == [False]
    release.set()
    for thread in threads:
        thread.join(5)
    assert overlapped == [False, False, False]


def test_the_server_installs_it(start_hub, monkeypatch) -> None:
    monkeypatch.setattr(ast, "parse", pyfix._original_parse)  # as in a server process (the tests' conftest set it)
    start_hub()
    assert ast.parse is pyfix._parse_one_at_a_time
