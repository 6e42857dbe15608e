"""Array transport: every serializer's wire format round-trips exactly; unsafe input is refused."""

from __future__ import annotations

import marshal

import numpy as np
import pytest
from Pyro5 import errors, serializers

from taggerhub.wire import codecs

codecs.install()  # not server=True: that would refuse marshal for every test in this process

ARRAYS = [
    np.arange(10, dtype=np.int32),
    np.arange(24, dtype=np.int64).reshape(2, 3, 4) * -(2**40),
    np.linspace(0, 1, 7),
    np.zeros((0, 5), dtype=np.float32),
    np.arange(2 * 300_000, dtype=np.int32).reshape(2, -1),  # large: goes out of band, vectored
    np.asfortranarray(np.arange(12.0).reshape(3, 4)),
]


def join(frame):
    return b"".join(bytes(memoryview(p)) for p in frame.parts) if isinstance(frame, codecs.Gather) else frame


@pytest.mark.parametrize("name", ["taggerhub", "msgpack", "serpent", "json"])
@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{a.shape}")
def test_arrays_round_trip_exactly(name, array):
    serializer = serializers.serializers[name]
    decoded = serializer.loads(join(serializer.dumps({"data": array, "n": np.int64(3)})))
    np.testing.assert_array_equal(decoded["data"], array)
    assert decoded["data"].dtype == array.dtype
    assert decoded["n"] == 3


def test_large_taggerhub_frames_are_vectored_and_decode_writable():
    serializer = serializers.serializers["taggerhub"]
    big = np.arange(1_000_000, dtype=np.int64)
    frame = serializer.dumps([big, "after"])
    assert isinstance(frame, codecs.Gather)
    received = np.frombuffer(join(frame), dtype=np.uint8).copy()  # as FastConnection receives it
    decoded, tail = serializer.loads(received)
    assert tail == "after"
    np.testing.assert_array_equal(decoded, big)
    decoded[0] = -1  # writable, like the vendor library's arrays


def test_object_arrays_are_refused():
    with pytest.raises(errors.SerializeError, match="object arrays"):
        serializers.serializers["taggerhub"].dumps(np.array([object()]))


def test_truncated_or_lying_frames_are_refused():
    serializer = serializers.serializers["taggerhub"]
    with pytest.raises(errors.SerializeError):
        serializer.loads(b"\x00\x00")
    with pytest.raises(errors.SerializeError):
        serializer.loads(b"\x00\x00\x10\x00" + b"\x90")
    frame = join(serializer.dumps(np.arange(100_000, dtype=np.int64)))
    with pytest.raises(errors.SerializeError, match="beyond the message"):
        serializer.loads(frame[: len(frame) // 2])


def test_marshal_is_refused_on_the_server():
    refused = codecs.RefusedSerializer()
    with pytest.raises(errors.SecurityError, match="refused"):
        refused.loadsCall(marshal.dumps(("obj", "getSerial", (), {})))
