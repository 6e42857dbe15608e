"""Recordings on a server, seen from the client: find one by name, download it, keep a local copy.

Used by ``taggerhub recordings download|export`` and by ``TT.FileReader`` / ``TT.createTimeTaggerVirtual``
(:mod:`.replay`), which take a recording of the caller's server folder by the name
``hub_recordings()`` lists and replay it here. Bytes come with ``hub_recording_read``, which the
server answers only inside the caller's own folder (admins: anyone's, with ``user``).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from . import env

CHUNK_BYTES = 16 * 1024 * 1024


def find(library: Any, name: str, user: str = "") -> dict[str, Any]:
    """The ``hub_recordings()`` row of recording ``name``; LookupError naming how to list them."""
    for row in library.hub_recordings(user):
        if row["name"] == name:
            return row
    raise LookupError(f"no recording {name!r}{f' of user {user!r}' if user else ''} on the server "
                      "(see 'taggerhub recordings list')")


def download(library: Any, name: str, directory: Path, user: str = "", row: dict[str, Any] | None = None) -> list[Path]:
    """Copy every file of recording ``name`` into ``directory`` (file names kept); return their local paths."""
    row = row or find(library, name, user)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for remote, size in row["files"]:
        local = directory / PurePosixPath(remote).name
        with local.open("wb") as out:
            offset = 0
            while offset < size:
                chunk = library.hub_recording_read(remote, offset, CHUNK_BYTES, user)
                if not len(chunk):
                    raise OSError(f"{remote} ended at {offset} of {size} bytes while downloading")
                out.write(memoryview(chunk))
                offset += len(chunk)
        paths.append(local)
    return paths


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]", "_", part) or "_"


def cache_folder(library: Any, cache: Path | None = None) -> Path:
    """``<cache>/<server host_port>/<user>``: recordings of different servers and users never mix."""
    location = library._pyroUri.location
    you = (library.hub_status().get("you") or {}).get("user", "")
    return (cache or env.recordings_cache()) / _safe(location) / _safe(you)


def local_copy(library: Any, name: str, cache: Path | None = None) -> Path:
    """A local path for ``name``: the file itself if it exists here, else the server's recording, downloaded.

    The cached copy is reused while every file of the recording has the size the server lists (a
    recording still being written grows, so it is fetched again). A name the server does not list
    is handed to the server anyway, so that one outside the caller's folder is refused by the server
    itself, naming the rule.
    """
    path = Path(name)
    if path.exists():
        return path
    try:
        row = find(library, str(name))
    except LookupError as missing:
        library.hub_recording_read(str(name), 0, 0)  # raises: outside the folder, or no such file
        raise FileNotFoundError(f"{name!r} is neither a local file nor {missing}") from None
    folder = cache_folder(library, cache) / PurePosixPath(row["name"]).parent
    wanted = {folder / PurePosixPath(remote).name: size for remote, size in row["files"]}
    if not all(p.is_file() and p.stat().st_size == size for p, size in wanted.items()):
        folder.mkdir(parents=True, exist_ok=True)
        # Into a scratch folder first: another script replaying the same name never reads a half-written copy.
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as scratch:
            for path in download(library, row["name"], Path(scratch), row=row):
                os.replace(path, folder / path.name)
    return folder / PurePosixPath(row["name"]).name
