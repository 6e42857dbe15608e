"""Wire-level fuzzing of a live server: malformed Pyro5 frames and handshakes, before and after login.

Bounded in examples and time. Afterwards a normal client call must still work and
the server's resident memory (from /proc) must not have grown beyond a small margin.
"""

from __future__ import annotations

import socket
import struct
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from Pyro5 import protocol, serializers

from taggerhub import client
from taggerhub.wire import codecs

pytestmark = pytest.mark.slow

HEADER = "!4sHBBHHII16sHH"
SERIALIZER_IDS = [1, 2, 3, 4]  # serpent, json, marshal, msgpack


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def header(msg_type=protocol.MSG_CONNECT, serializer_id=4, flags=0, seq=0, data_size=0, ann_size=0,
           tag=b"PYRO", version=protocol.PROTOCOL_VERSION, magic=0x4DC5) -> bytes:
    return struct.pack(HEADER, tag, version, msg_type, serializer_id, flags, seq, data_size, ann_size,
                       b"\0" * 16, 0, magic)


def connect_frame(handshake, serializer_id=4, obj="TimeTaggerRPC") -> bytes:
    codecs.install()
    data = serializers.serializers_by_id[serializer_id].dumps({"handshake": handshake, "object": obj})
    return header(serializer_id=serializer_id, data_size=len(data)) + data


def exchange(port: int, payload: bytes, prefix: bytes = b"", timeout_s: float = 2.0) -> bytes:
    """Send ``prefix`` (read its reply), then ``payload``; half-close; return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        if prefix:
            sock.sendall(prefix)
            sock.recv(65536)
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError:  # the server dropped us: fine
            return b""


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)

headers = st.builds(
    header,
    msg_type=st.integers(0, 255), serializer_id=st.integers(0, 255), flags=st.integers(0, 0xFFFF),
    seq=st.integers(0, 0xFFFF), data_size=st.integers(0, 2**32 - 1), ann_size=st.integers(0, 2**32 - 1),
    tag=st.sampled_from([b"PYRO", b"PYRX", b"\0\0\0\0"]),
    version=st.sampled_from([protocol.PROTOCOL_VERSION, 501, 0, 65535]),
    magic=st.sampled_from([0x4DC5, 0]),
)

frames = st.one_of(
    st.binary(max_size=300),  # garbage
    st.tuples(headers, st.binary(max_size=200)).map(lambda t: t[0] + t[1]),  # odd headers, short bodies
    st.builds(connect_frame, st.fixed_dictionaries({"client": json_values, "token": json_values}),
              st.sampled_from(SERIALIZER_IDS), st.text(max_size=20)),  # handshakes of the wrong shape
    st.builds(connect_frame, json_values, st.sampled_from(SERIALIZER_IDS)),
    st.tuples(st.sampled_from(SERIALIZER_IDS), st.binary(max_size=200)).map(  # right header, garbage payload
        lambda t: header(serializer_id=t[0], data_size=len(t[1])) + t[1]),
    st.binary(min_size=1, max_size=60).map(lambda b: connect_frame({"token": "x"})[: len(b)]),  # truncated
)

invokes = st.one_of(
    st.tuples(st.sampled_from(SERIALIZER_IDS), st.integers(0, 0xFFFF), st.binary(max_size=200)).map(
        lambda t: header(msg_type=protocol.MSG_INVOKE, serializer_id=t[0], flags=t[1], data_size=len(t[2])) + t[2]),
    st.tuples(headers, st.binary(max_size=100)).map(lambda t: t[0] + t[1]),
    st.builds(lambda obj, method, args: _invoke(obj, method, args), st.sampled_from(["TimeTaggerRPC", "Pyro.Daemon",
              "nope"]), st.sampled_from(["createTimeTagger", "hub_end_session", "__getattr__", "_obj", "load_lab",
                                         "get_metadata", "freeTimeTagger"]), st.lists(json_values, max_size=3)),
)


def _invoke(obj: str, method: str, args: list) -> bytes:
    data = serializers.serializers_by_id[4].dumpsCall(obj, method, args, {})
    return header(msg_type=protocol.MSG_INVOKE, data_size=len(data)) + data


def fuzz_round(port: int, token: str, examples: int, seed: int) -> int:
    sent = 0

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(frame=frames, invoke=invokes, seed=st.just(seed))
    def one(frame: bytes, invoke: bytes, seed: int) -> None:
        nonlocal sent
        exchange(port, frame)
        exchange(port, invoke, prefix=connect_frame({"client": f"fuzz{seed}", "token": token}))
        sent += 2

    one()
    return sent


def test_malformed_frames_and_handshakes_leave_server_serving_with_stable_memory(start_auth_process):
    server = start_auth_process(TAGGERHUB_SERVER_HANDSHAKE_TIMEOUT_S="2",
                                TAGGERHUB_SERVER_MAX_MESSAGE_BYTES=str(1024 * 1024))
    pid, token = server.server.proc.pid, server.tokens["ada"]
    TT = client.createProxy(port=server.port, token=server.tokens["otto"])
    tagger = TT.createTimeTagger()
    started = time.monotonic()
    assert fuzz_round(server.port, token, 120, 1) == 240  # warm-up: thread pool, caches
    time.sleep(0.5)
    before = rss_kib(pid)
    fuzz_round(server.port, token, 250, 2)
    time.sleep(0.5)
    after = rss_kib(pid)
    assert time.monotonic() - started < 150
    # A normal call on an existing connection and on a new one still works.
    tagger.setTestSignal(1, True)
    assert client.createProxy(port=server.port, token=server.tokens["oscar"]).createTimeTagger().getTestSignal(1)
    assert after - before < 8 * 1024, f"RSS grew from {before} to {after} KiB"
    assert server.server.proc.poll() is None
    counts = TT.hub_metrics()["rpc"]["refused_handshakes"]
    assert counts.get("protocol", 0) > 50 and counts.get("bad_token", 0) + counts.get("no_token", 0) > 10
    log = server.server.log()
    assert "connection dropped: bad frame" in log  # after login: one line each, no tracebacks
    assert "Traceback" not in log, log[max(0, log.find("Traceback") - 600):][:4000]


@pytest.mark.parametrize("serializer_id", [0, 9, 255])
def test_handshake_in_an_unknown_serializer_is_refused_in_one_log_line(start_auth_server, serializer_id):
    server = start_auth_server()
    data = serializers.serializers_by_id[4].dumps({"handshake": {"token": server.tokens["otto"]}, "object": "x"})
    assert exchange(server.port, header(serializer_id=serializer_id, data_size=len(data)) + data) == b""
    assert client.createProxy(port=server.port, token=server.tokens["otto"]).getVersion()
    log = server.server.log()
    assert '"reason": "protocol"' in log and "bad or missing Pyro5 handshake" in log
    assert "Traceback" not in log, log


def test_compressed_bomb_and_oversized_frames_are_dropped(start_auth_process):
    server = start_auth_process(TAGGERHUB_SERVER_MAX_MESSAGE_BYTES=str(1024 * 1024))
    pid = server.server.proc.pid
    login = connect_frame({"client": "bomb", "token": server.tokens["otto"]})
    bomb = zlib.compress(b"\0" * (200 * 1024 * 1024), 9)  # ~200 KB inflating to 200 MB
    before = rss_kib(pid)
    frame = header(msg_type=protocol.MSG_INVOKE, flags=protocol.FLAGS_COMPRESSED, data_size=len(bomb)) + bomb
    assert b"PYRO" not in exchange(server.port, frame, prefix=login)[:4]  # dropped, no result
    big = header(msg_type=protocol.MSG_INVOKE, data_size=4 * 1024 * 1024)
    exchange(server.port, big + b"\0" * 1000, prefix=login)
    handshake_bomb = header(flags=protocol.FLAGS_COMPRESSED, data_size=len(bomb)) + bomb
    exchange(server.port, handshake_bomb)
    assert rss_kib(pid) - before < 50 * 1024
    assert client.createProxy(port=server.port, token=server.tokens["otto"]).getVersion()
    log = server.server.log()
    assert "compressed Pyro5 messages are not accepted" in log or "handshake larger than" in log
