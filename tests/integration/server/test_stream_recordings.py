"""Recordings through a live server: TT.FileWriter into per-user folders, quotas, and `taggerhub recordings`."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from taggerhub import client
from taggerhub.cli.main import main as cli
from taggerhub.sim.recording import FileReader

SECOND = 10**12


def connect(server, user: str):
    return client.createProxy(host="127.0.0.1", port=server.port, token=server.tokens[user])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def recording_server(start_auth_server, tmp_path: Path):
    root = tmp_path / "recordings"
    server = start_auth_server(TAGGERHUB_SERVER_RECORDINGS_DIR=str(root),
                               TAGGERHUB_LIMITS_OVERRIDES="user:oscar.recording_bytes=200000")
    server.root = root
    return server


def test_file_writer_records_in_the_users_folder_and_downloads_exactly(recording_server, tmp_path, capsys) -> None:
    server = recording_server
    TT = connect(server, "otto")
    tagger = TT.createTimeTagger()
    writer = TT.FileWriter(tagger, "day1/run", [1, 2])
    writer.startFor(SECOND // 5)
    assert writer.waitUntilFinished(30_000)
    writer.split()
    writer.startFor(SECOND // 5)
    assert writer.waitUntilFinished(30_000)
    writer.stop()
    events = writer.getTotalEvents()
    assert events > 5_000
    on_server = sorted((server.root / "otto" / "day1").iterdir())
    assert [p.name for p in on_server] == ["run.1.ttbin", "run.2.ttbin", "run.ttbin"]

    token = ["--port", str(server.port), "--token", server.tokens["otto"]]
    assert cli(["recordings", "list", *token]) == 0
    assert "day1/run.ttbin" in capsys.readouterr().out
    local = tmp_path / "local"
    assert cli(["recordings", "download", "day1/run.ttbin", "-o", str(local), *token]) == 0
    for remote in on_server:
        assert digest(local / remote.name) == digest(remote)  # byte for byte
    mine, theirs = FileReader(str(local / "run.ttbin")), FileReader(str(server.root / "otto/day1/run.ttbin"))
    a, b = mine.getData(10**7), theirs.getData(10**7)
    assert a.size == events
    np.testing.assert_array_equal(a.getTimestamps(), b.getTimestamps())
    np.testing.assert_array_equal(a.getChannels(), b.getChannels())

    exported = tmp_path / "run.h5"
    assert cli(["recordings", "export", "day1/run.ttbin", "-o", str(exported), *token]) == 0
    import phconvert

    h5 = phconvert.hdf5.load_photon_hdf5(str(exported))  # validates against the Photon-HDF5 specs
    try:
        np.testing.assert_array_equal(h5.root.photon_data.timestamps.read(), a.getTimestamps())
    finally:
        h5.close()

    assert cli(["recordings", "remove", "day1/run.ttbin", *token]) == 0
    assert TT.hub_recordings() == [] and not any((server.root / "otto").rglob("*.ttbin"))


def test_paths_outside_the_folder_are_refused(recording_server, tmp_path) -> None:
    server = recording_server
    TT = connect(server, "otto")
    tagger = TT.createTimeTagger()
    outside = tmp_path / "escaped"
    for name in (str(outside), "../escaped", "a/../../escaped", "..\\escaped"):
        with pytest.raises(ValueError, match=r"no absolute path, no '\.\.'"):
            TT.FileWriter(tagger, name, [1])
    (server.root / "otto").mkdir(parents=True, exist_ok=True)
    (server.root / "otto" / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="leaves your recording folder"):
        TT.FileWriter(tagger, "link/escaped", [1])
    writer = TT.FileWriter(tagger, "inside", [1])
    with pytest.raises(ValueError, match="no absolute path"):
        writer.split(str(outside))
    with pytest.raises(ValueError, match="no absolute path"):
        TT.hub_recording_read("/etc/passwd")
    writer.stop()
    assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*"))
    assert TT.FileWriter(tagger, "inside", [1]) is not None  # the server still serves


def test_quota_stops_a_recording_and_refuses_the_next(recording_server) -> None:
    server = recording_server
    TT = connect(server, "oscar")
    tagger = TT.createTimeTagger()
    writer = TT.FileWriter(tagger, "long", [1, 2])  # ~100 k tags/s x 16 bytes
    deadline = time.monotonic() + 15
    while writer.isRunning() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not writer.isRunning(), "the quota watch did not stop the recording"
    used = sum(p.stat().st_size for p in (server.root / "oscar").rglob("*"))
    assert 200_000 <= used < 200_000 + 2_000_000  # over by at most about half a second of tags
    with pytest.raises(PermissionError, match=r"limits\.recording_bytes"):
        TT.FileWriter(tagger, "more", [1])
    assert any(e["event"] == "recording_quota" and e["user"] == "oscar" for e in server.audit())


def test_users_see_their_own_recordings_admins_everyones(recording_server, capsys) -> None:
    server = recording_server
    for user in ("otto", "oscar"):
        TT = connect(server, user)
        writer = TT.FileWriter(TT.createTimeTagger(), f"{user}-run", [1])
        writer.startFor(SECOND // 50)
        assert writer.waitUntilFinished(30_000)
        writer.stop()
    oscar = connect(server, "oscar")
    assert [r["name"] for r in oscar.hub_recordings()] == ["oscar-run.ttbin"]
    with pytest.raises(PermissionError, match="only admins"):
        oscar.hub_recordings("otto")
    with pytest.raises(PermissionError, match="only admins"):
        oscar.hub_recording_read("otto-run.ttbin", 0, 100, "otto")
    with pytest.raises(PermissionError, match="only admins"):
        oscar.hub_recording_remove("otto-run.ttbin", "otto")
    ada = ["--port", str(server.port), "--token", server.tokens["ada"]]
    assert cli(["recordings", "list", "--user", "*", "--json", *ada]) == 0
    listed = capsys.readouterr().out
    assert "otto-run.ttbin" in listed and "oscar-run.ttbin" in listed
    assert cli(["recordings", "remove", "otto-run.ttbin", "--user", "otto", *ada]) == 0
    assert connect(server, "otto").hub_recordings() == []
    assert any(e["event"] == "call" and e["method"] == "TimeTaggerRPC.hub_recording_remove" and e["user"] == "ada"
               for e in server.audit())
