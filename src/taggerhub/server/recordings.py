"""Recordings over RPC: ``TT.FileWriter`` writes into the caller's own folder on the server, within a quota.

Every user has one folder under ``server.recordings_dir`` (``<dir>/<user>``); a file name from a
client is a relative name inside it, never an absolute path or one with ``..`` (refused, naming the
rule). ``limits.recording_bytes`` caps what one user's folder may hold: a new recording is refused
once the folder is full, and a running one is stopped (and audited) when a check, twice a second,
finds the folder over the cap, so the overshoot is at most half a second of tags. Users list,
download and remove their own recordings; admins anyone's. The files are the simulator's open
format (docs/recordings.md) or, on hardware, the vendor's ``.ttbin``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
import weakref
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import numpy as np

from ..access.policy import Access
from ..backend.adapter import Adapter
from ..backend.kinds import ObjectKind
from ..errors import AccessDenied
from ..sim import recording
from .callpath import CallPath
from .sessions import Session

log = logging.getLogger("taggerhub.server")
READ_MAX_BYTES = 16 * 1024 * 1024  # the most one hub_recording_read returns
QUOTA_CHECK_S = 0.5
SAFE_USER = re.compile(r"[^A-Za-z0-9_.@-]")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


@functools.cache
def writer_class(backend: ModuleType) -> type:
    """The backend's FileWriter whose ``split(new_filename)`` stays inside the owner's folder too."""
    base = backend.FileWriter

    class FileWriter(base):  # type: ignore[misc, valid-type]
        __doc__ = base.__doc__
        _taggerhub_resolve: Any = None  # set by RecordingCalls.file_writer: a name -> a path in the folder

        def split(self, new_filename: str = "") -> None:
            """Close the current file and go on in a new one (``new_filename``: in your recording folder)."""
            base.split(self, self._taggerhub_resolve(new_filename) if new_filename else "")

    return FileWriter


class RecordingCalls:
    """The FileWriter and ``hub_recording*`` server calls over per-user folders."""

    def __init__(self, backend: ModuleType, calls: CallPath, root: str):
        self.backend = backend
        self.calls = calls
        self.access: Access = calls.access
        self.root = Path(root).resolve() if root else None
        self._writers: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()  # -> user, role
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- folders and names ------------------------------------------------------------
    def _root(self) -> Path:
        if self.root is None:
            raise PermissionError("recordings are off on this server: an admin sets server.recordings_dir "
                                  "(TAGGERHUB_SERVER_RECORDINGS_DIR) to a folder for them")
        return self.root

    def folder_of(self, user: str) -> Path:
        return self._root() / (SAFE_USER.sub("_", user) or "_")

    def _whose(self, session: Session, user: str) -> str:
        """The user whose folder a call names: the caller's own, or (admins) anyone's."""
        own = session.user
        if not user or user == own:
            return own
        if self.access.enabled and self.access.role_now(session) != "admin":
            raise AccessDenied(f"recordings of user {user!r}: only admins see other users' recordings")
        return str(user)

    def resolve(self, user: str, name: Any, what: str) -> Path:
        """``name`` inside ``user``'s folder; a clear error for anything that would leave it."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{what}: expected a file name, got {name!r}")
        pure = PurePosixPath(name.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name):
            raise ValueError(f"{what}: {name!r} is not allowed: give a name relative to your recording "
                             "folder on the server (no absolute path, no '..')")
        folder = self.folder_of(user)
        path = (folder / pure).resolve()
        if not path.is_relative_to(folder.resolve()) or path == folder.resolve():
            raise ValueError(f"{what}: {name!r} leaves your recording folder")
        return path

    def _check_quota(self, user: str, role: str) -> None:
        allowed = self.access.quotas.limit(user, role, "recording_bytes")
        used = folder_bytes(self.folder_of(user))
        if allowed and used >= allowed:
            raise AccessDenied(f"user {user!r} already holds {used} bytes of recordings (limits.recording_bytes="
                               f"{allowed}); remove some (taggerhub recordings remove) or ask an admin")

    # -- calls ---------------------------------------------------------------------------
    def file_writer(self, session: Session, tagger: Any, filename: str, channels: list[int]) -> Adapter:
        """Record the tags of ``channels`` to ``filename`` in your recording folder on the server.

        ``filename`` is relative to that folder (see hub_recordings()); the recording counts against
        limits.recording_bytes and stops when your folder is full.
        """
        device = self.calls.tagger_for(tagger, session, (ObjectKind.library, "FileWriter", False))
        user = session.user
        path = self.resolve(user, filename, "FileWriter")
        role = self.access.role_now(session)
        self._check_quota(user, role)
        self.access.quotas.check_objects(self.calls.quota_user(session), role)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = writer_class(self.backend)(device._obj, str(path), channels)
        writer._taggerhub_resolve = lambda name: str(self.resolve(user, name, "FileWriter.split"))
        with self._lock:
            self._writers[writer] = (user, role)
        self._watch()
        log.info("recording started", extra={"user": user, "session": session.id, "file": str(path)})
        return self.calls.serve(writer, session, parent=device)

    def list(self, session: Session, user: str = "") -> list[dict[str, Any]]:
        """Your recordings (admins: ``user``'s, or everyone's with ``user='*'``): name, files, bytes, events, span."""
        if user == "*":
            self._whose(session, "*")
            users = sorted(p.name for p in self._root().iterdir() if p.is_dir()) if self._root().is_dir() else []
        else:
            users = [self._whose(session, user)]
        rows: list[dict[str, Any]] = []
        for name in users:
            rows.extend(self._recordings_of(name))
        return rows

    def _recordings_of(self, user: str) -> list[dict[str, Any]]:
        """One row per recording: a sequence (header and parts) or a lone file (a vendor .ttbin, say)."""
        folder = self.folder_of(user)
        if not folder.is_dir():
            return []
        infos: dict[Path, dict[str, Any]] = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            try:
                infos[path] = recording.recording_info(path)
            except (recording.RecordingFormatError, ValueError, OSError):  # not in the open format
                infos[path] = {"files": [str(path)], "events": None, "channels": [], "begin_ps": None,
                               "end_ps": None}
        parts = {Path(f) for path, info in infos.items() for f in info["files"] if Path(f) != path}
        rows = []
        for path, info in infos.items():
            if path in parts:
                continue
            members = [Path(f) for f in info["files"] if Path(f).exists()]
            rows.append({
                "user": user, "name": path.relative_to(folder).as_posix(),
                "files": [[m.relative_to(folder).as_posix(), m.stat().st_size] for m in members],
                "bytes": sum(m.stat().st_size for m in members), "events": info["events"],
                "channels": info["channels"], "begin_ps": info["begin_ps"], "end_ps": info["end_ps"]})
        return rows

    def read(self, session: Session, name: str, offset: int = 0, size: int = READ_MAX_BYTES,
             user: str = "") -> np.ndarray:
        """Bytes ``offset`` .. ``offset + size`` (at most 16 MiB) of file ``name`` of a recording, for downloads."""
        path = self.resolve(self._whose(session, user), name, "hub_recording_read")
        if not path.is_file():
            raise FileNotFoundError(f"no recording file {name!r} (see hub_recordings())")
        size = min(max(int(size), 0), READ_MAX_BYTES)
        with path.open("rb") as f:
            f.seek(max(int(offset), 0))
            return np.frombuffer(f.read(size), dtype=np.uint8)

    def remove(self, session: Session, name: str, user: str = "") -> list[str]:
        """Delete recording ``name`` (every file of it); return the files removed."""
        owner = self._whose(session, user)
        path = self.resolve(owner, name, "hub_recording_remove")
        if not path.is_file():
            raise FileNotFoundError(f"no recording {name!r} (see hub_recordings())")
        try:
            members = recording.recording_files(path)
        except (recording.RecordingFormatError, ValueError):
            members = [path]
        folder = self.folder_of(owner)
        for member in members:
            member.unlink(missing_ok=True)
        return [m.relative_to(folder).as_posix() for m in members]

    # -- the quota watch ------------------------------------------------------------------
    def _watch(self) -> None:
        with self._lock:
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._enforce, name="taggerhub-recording-quota", daemon=True)
                self._watcher.start()

    def _enforce(self) -> None:
        """Stop the running writers of a user whose folder went over limits.recording_bytes."""
        while not self._stop.wait(QUOTA_CHECK_S):
            with self._lock:
                writers = list(self._writers.items())
            if not writers:
                return
            for user, role in {owner for _, owner in writers}:
                allowed = self.access.quotas.limit(user, role, "recording_bytes")
                used = folder_bytes(self.folder_of(user))
                if not allowed or used < allowed:
                    continue
                for writer, (owner, _) in writers:
                    if owner == user and writer.isRunning():
                        with contextlib.suppress(Exception):  # its device may be gone: nothing left to stop
                            writer.stop()
                        self.access.audit.write("recording_quota", user=user, bytes=used, limit=allowed)
                        log.warning("recording stopped: quota reached", extra={"user": user, "bytes": used})

    def close(self) -> None:
        self._stop.set()

