"""The audit log: one JSON object per line, appended, bounded argument text, lines never interleave."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from taggerhub.access.audit import MAX_ARG_CHARS, AuditLog, summarize


def test_events_are_appended_as_json_lines_and_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    log.write("connect", user="ada", session="s1")
    log.close()
    log = AuditLog(str(path))  # a restart appends, never truncates
    log.write("disconnect", user="ada", calls=3)
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["event"], e["user"]) for e in lines] == [("connect", "ada"), ("disconnect", "ada")]
    assert lines[1]["calls"] == 3 and lines[0]["time"].endswith("Z")
    assert path.stat().st_mode & 0o777 == 0o600


def test_no_path_writes_nothing(tmp_path: Path) -> None:
    log = AuditLog("")
    log.write("connect", user="ada")
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))

    def writer(n: int) -> None:
        for i in range(200):
            log.write("call", user=f"u{n}", args="x" * 500, i=i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 8 * 200


def test_summarize_bounds_arguments_and_names_arrays() -> None:
    assert summarize((1, "a"), {"binwidth": 1000}) == "1, 'a', binwidth=1000"
    assert summarize((np.zeros((3, 4)),), {}) == "<array (3, 4)>"
    long = summarize(tuple(range(1000)), {})
    assert len(long) == MAX_ARG_CHARS and long.endswith("...")
