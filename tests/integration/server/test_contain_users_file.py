"""`taggerhub user` changes from parallel processes: none lost, none undone, never a half-written file."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from taggerhub.access.users import UserStore

pytestmark = pytest.mark.slow


def user_cmd(users: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "taggerhub", "user", "--users-file", str(users), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen]) -> list[str]:
    errors = []
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        if proc.returncode:
            errors.append(err)
    return errors


def test_10_parallel_adds_leave_10_users_and_readers_never_see_half_a_file(tmp_path):
    users = tmp_path / "users.toml"
    UserStore(users).add("first", "admin")
    stop = threading.Event()
    read_errors: list[str] = []
    reads = [0]

    def reader() -> None:  # what the server does: re-read the file while it changes
        store = UserStore(users)
        while not stop.is_set():
            try:
                store.load()
                reads[0] += 1
            except Exception as exc:
                read_errors.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        errors = finish([user_cmd(users, "add", f"u{i}", "--role", "observer") for i in range(10)])
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    final = UserStore(users)
    final.load()
    names = {u.name for u in final.users()}
    assert names == {"first"} | {f"u{i}" for i in range(10)}
    assert not read_errors, read_errors[:3]
    assert reads[0] > 0


def test_remove_racing_add_is_never_undone(tmp_path):
    users = tmp_path / "users.toml"
    store = UserStore(users)
    for trial in range(10):
        store.add(f"gone{trial}", "observer")
        errors = finish([user_cmd(users, "remove", f"gone{trial}"),
                         user_cmd(users, "add", f"new{trial}", "--role", "observer")])
        assert not errors, errors
        store.load()
        names = {u.name for u in store.users()}
        assert f"gone{trial}" not in names, f"trial {trial}: the remove was undone"
        assert f"new{trial}" in names, f"trial {trial}: the add was lost"
