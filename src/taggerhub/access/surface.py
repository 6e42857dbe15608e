"""The server's own remote calls, declared once: name, handler, level, retry safety, why.

These are the calls on the library object that the server answers itself rather than the
backend (status, the control lease, sessions, experiments, and the device calls it shares
between clients). Dispatch (:mod:`taggerhub.server.library`), the permission rules
(:mod:`.rules`), ``taggerhub permissions``, the docs and the client's retry policy all read
this table, so a call is added in one place. Each handler's docstring is its remote doc.
"""

from __future__ import annotations

from dataclasses import dataclass

from .levels import Level


@dataclass(frozen=True)
class ServerCall:
    name: str  # the remote name on the library object (TimeTaggerRPC)
    handler: str  # the method of server.library.LibraryCalls that serves it ("part.method": of one of its parts)
    level: Level
    retry_safe: bool  # the client may resend it after a broken connection: it changes nothing
    why: str = ""
    backend_function: bool = False  # also a backend function: its vendor signature and doc are served


SERVER_CALLS: tuple[ServerCall, ...] = (
    ServerCall("createTimeTagger", "create_tagger", Level.read, False, "hands out the shared, already open device",
               backend_function=True),
    ServerCall("freeTimeTagger", "free_tagger", Level.free, False,
               "admins free the device for everyone, others their use", backend_function=True),
    ServerCall("freeAllTimeTagger", "free_all_taggers", Level.free, False,
               "ends the caller's use of every tagger (an admin's: frees them for everyone)", backend_function=True),
    ServerCall("hub_release", "table.end_use", Level.free, False,
               "ends the caller's own use of objects its client dropped; never forces, even for admins"),
    ServerCall("enum_definitions", "enum_definitions", Level.read, True),
    ServerCall("constant_definitions", "constant_definitions", Level.read, True,
               "the library's constants (CHANNEL_UNUSED, TT_CHANNEL_FALLING_EDGES, ...)"),
    ServerCall("hub_status", "status", Level.read, True, "server status"),
    ServerCall("hub_metrics", "metrics", Level.read, True, "server metrics"),
    ServerCall("acquireControl", "acquire_control", Level.lease, False, "exclusive right to change device settings"),
    ServerCall("releaseControl", "release_control", Level.lease, False),
    ServerCall("hub_sessions", "list_sessions", Level.admin, False, "lists every client"),
    ServerCall("hub_end_session", "end_session", Level.admin, False, "disconnects a client"),
    ServerCall("experiment", "create_experiment", Level.create, False,
               "the new server-side experiment belongs to its creator"),
    ServerCall("experiments", "experiments", Level.read, False, "lists the experiment plugins offered"),
    ServerCall("hub_stream_open", "stream.open", Level.create, False,
               "a tag stream of the caller's own (client-side CustomMeasurement); observers may listen"),
    ServerCall("hub_stream_read", "stream.read", Level.read, False, "takes queued tags of the caller's own stream"),
    ServerCall("hub_stream_state", "stream.state", Level.read, True, "reads the caller's own stream's state"),
    ServerCall("hub_stream_control", "stream.control", Level.create, False,
               "starts/stops the caller's own stream, as a measurement's creator may"),
    ServerCall("hub_stream_close", "stream.close", Level.create, False, "frees the caller's own stream"),
    ServerCall("FileWriter", "recordings.file_writer", Level.create, False,
               "records into the caller's own folder on the server, within limits.recording_bytes"),
    ServerCall("hub_recordings", "recordings.list", Level.read, True,
               "lists the caller's recordings (admins: anyone's)"),
    ServerCall("hub_recording_read", "recordings.read", Level.read, True,
               "downloads the caller's recordings (admins: anyone's)"),
    ServerCall("hub_recording_remove", "recordings.remove", Level.create, False,
               "deletes the caller's own recordings (admins: anyone's)"),
)
SERVER_CALLS_BY_NAME = {call.name: call for call in SERVER_CALLS}
SERVER_CALL_NAMES = tuple(call.name for call in SERVER_CALLS)
RETRY_SAFE_CALLS = frozenset(call.name for call in SERVER_CALLS if call.retry_safe)
