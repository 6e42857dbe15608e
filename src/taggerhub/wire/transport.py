"""How values cross the wire: NumPy arrays per serializer, and which serializers are allowed.

- ``taggerhub`` (the default of taggerhub's client): msgpack for the structure,
  arrays out of band as raw bytes after it. Large payloads are sent with one
  vectored ``sendmsg`` straight from the array's memory and received into one
  buffer that the arrays then view, so a 80 MB ``getData`` is copied by the
  kernel and not again by Python.
- ``msgpack``: arrays as raw bytes inside msgpack (no base64).
- ``serpent`` and ``json`` (the vendor's TimeTaggerRPC client): arrays in the
  vendor's format, an ``.npy`` file in base64, so its client decodes them.
- ``marshal`` is refused on the server: it is not safe on untrusted input
  (pickle is not offered by Pyro5 at all).

:func:`install` is idempotent and must run in every taggerhub process before
the first proxy or daemon is used.
"""

from __future__ import annotations

import base64
import io
import marshal
import socket
import struct
import threading
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np
from Pyro5 import config as pyro_config
from Pyro5 import errors, protocol, serializers, socketutil

NDARRAY_CLASS = "numpy.ndarray"
TAGGERHUB_SERIALIZER_ID = 84  # 'T'; Pyro5 uses 1-4 for its own serializers
GATHER_THRESHOLD = 64 * 1024  # below this, one contiguous bytes object is cheaper than sendmsg
RECV_INTO_THRESHOLD = 64 * 1024
READ_AHEAD = 64 * 1024
ALIGN = 64
_LENGTH = struct.Struct("!I")
_NDARRAY_MARK = NDARRAY_CLASS.encode()
# Pyro5's wire header: tag, version, type, serializer, flags, seq, data size, annotations size,
# correlation id, reserved, magic. Packed and parsed here directly on the per-call paths.
PYRO_HEADER = struct.Struct(protocol._header_format)
_PYRO_TAG = b"PYRO"
_NO_CORRELATION = b"\0" * 16
_install_lock = threading.Lock()
_installed: dict[str, bool] = {}


def encode_npy_base64(array: np.ndarray) -> dict[str, Any]:
    """Vendor TimeTaggerRPC format: the array as an .npy file, base64 text."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return {"__class__": NDARRAY_CLASS, "data": base64.b64encode(buffer.getvalue()).decode("ascii")}


def _checked_dtype(name: Any) -> np.dtype:
    dtype = np.dtype(name)
    if dtype.hasobject:
        raise errors.SerializeError("object arrays are not accepted")
    return dtype


def decode_ndarray(classname: str, data: dict[str, Any]) -> np.ndarray:
    """Rebuild an array from the in-band formats (raw bytes, or the vendor's base64 .npy)."""
    if "raw" in data:
        array = np.frombuffer(data["raw"], dtype=_checked_dtype(data["dtype"])).reshape(data["shape"])
        return array.copy()  # writable, like the vendor library's arrays
    payload = data["data"]
    if isinstance(payload, str):
        payload = payload.encode("ascii")
    return np.load(io.BytesIO(base64.b64decode(payload)), allow_pickle=False)


def _numpy_scalar_to_python(obj: Any) -> Any:
    return obj.item()


def _plain_value(obj: Any) -> Any:
    """NumPy scalars become Python numbers (as the vendor library returns them)."""
    if isinstance(obj, np.generic):
        return obj.item()
    return None


class NumpyMsgpackSerializer(serializers.MsgpackSerializer):
    """msgpack with arrays as raw bytes and NumPy scalars as plain numbers."""

    def default(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            contiguous = np.ascontiguousarray(obj)
            _checked_dtype(contiguous.dtype)
            return {
                "__class__": NDARRAY_CLASS,
                "dtype": contiguous.dtype.str,
                "shape": list(contiguous.shape),
                "raw": memoryview(contiguous).cast("B") if contiguous.size else b"",
            }
        plain = _plain_value(obj)
        return plain if plain is not None else super().default(obj)

    def object_hook(self, obj: Any) -> Any:
        # Decode arrays here, not via the class registry, so another library's
        # ndarray hook in the same process (the vendor client's) cannot shadow ours.
        if obj.get("__class__") == NDARRAY_CLASS and "raw" in obj:
            return decode_ndarray(NDARRAY_CLASS, obj)
        return super().object_hook(obj)


class NumpyJsonSerializer(serializers.JsonSerializer):
    """JSON with NumPy scalars as plain numbers and arrays in the vendor's format."""

    def default(self, obj: Any) -> Any:
        plain = _plain_value(obj)
        return plain if plain is not None else super().default(obj)


class Gather:
    """A message made of several buffers, sent with one vectored write instead of being joined."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[Any]):
        self.parts = list(parts)

    def __len__(self) -> int:
        return sum(memoryview(p).nbytes for p in self.parts)

    def __radd__(self, other: Any) -> Gather:
        # Pyro5 prepends its header with `header + payload`; keep the parts apart.
        return Gather([other, *self.parts])


class _HasArrays(Exception):
    """Raised while packing a small message that turns out to hold arrays (they go out of band)."""


class TaggerhubSerializer(NumpyMsgpackSerializer):
    """msgpack structure, then array buffers out of band: ``[len][msgpack][pad][array bytes]...``."""

    serializer_id = TAGGERHUB_SERIALIZER_ID

    def _frame(self, data: Any) -> bytes | Gather:
        try:  # the common small message: no arrays, no closure, one join
            head = msgpack.packb(data, use_bin_type=True, default=self._default_without_arrays)
        except _HasArrays:
            return self._frame_with_arrays(data)
        return b"".join((_LENGTH.pack(len(head)), head, b"\0" * (-(_LENGTH.size + len(head)) % ALIGN)))

    def _default_without_arrays(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            raise _HasArrays
        return self.default(obj)

    def _frame_with_arrays(self, data: Any) -> bytes | Gather:
        buffers: list[tuple[int, np.ndarray]] = []
        offset = 0

        def default(obj: Any) -> Any:
            nonlocal offset
            if isinstance(obj, np.ndarray):
                contiguous = np.ascontiguousarray(obj)
                _checked_dtype(contiguous.dtype)
                pad = -offset % ALIGN
                ref = {"__class__": NDARRAY_CLASS, "dtype": contiguous.dtype.str,
                       "shape": list(contiguous.shape), "at": offset + pad}
                buffers.append((pad, contiguous))
                offset += pad + contiguous.nbytes
                return ref
            return self.default(obj)

        head = msgpack.packb(data, use_bin_type=True, default=default)
        prefix = _LENGTH.pack(len(head))
        # Array offsets count from the end of the aligned head.
        head_pad = b"\0" * (-(len(prefix) + len(head)) % ALIGN)
        parts: list[Any] = [prefix, head, head_pad]
        for pad, array in buffers:
            if pad:
                parts.append(b"\0" * pad)
            if array.nbytes:
                parts.append(memoryview(array).cast("B"))
        if offset < GATHER_THRESHOLD:
            return b"".join(parts)
        return Gather(parts)

    def dumps(self, data: Any) -> Any:
        return self._frame(data)

    def dumpsCall(self, obj: Any, method: str, vargs: Any, kwargs: Any) -> Any:
        return self._frame((obj, method, vargs, kwargs))

    def _unframe(self, data: Any) -> Any:
        if len(data) < _LENGTH.size:
            raise errors.SerializeError("truncated taggerhub message")
        (head_len,) = _LENGTH.unpack_from(data)
        head_end = _LENGTH.size + head_len
        if head_end > len(data):
            raise errors.SerializeError("truncated taggerhub message")
        head = data[_LENGTH.size:head_end] if type(data) is bytes else bytes(data[_LENGTH.size:head_end])
        hook = self.object_hook
        if _NDARRAY_MARK in head:  # the head is small: a substring search is cheap
            base = head_end + (-head_end % ALIGN)  # arrays travel out of band after the head
            view = data if isinstance(data, memoryview) else memoryview(data)
            body = view.cast("B")[base:] if base < len(data) else memoryview(b"")
            writable = not body.readonly

            def hook(obj: dict[str, Any]) -> Any:
                if obj.get("__class__") == NDARRAY_CLASS and "at" in obj:
                    dtype = _checked_dtype(obj["dtype"])
                    shape = [int(s) for s in obj["shape"]]
                    count = int(np.prod(shape)) if shape else 1
                    start = int(obj["at"])
                    if start < 0 or start + count * dtype.itemsize > body.nbytes:
                        raise errors.SerializeError("array reaches beyond the message")
                    array = np.frombuffer(body, dtype=dtype, count=count, offset=start).reshape(shape)
                    return array if writable else array.copy()
                return self.object_hook(obj)

        try:
            return msgpack.unpackb(head, raw=False, object_hook=hook, ext_hook=self.ext_hook)
        except (ValueError, msgpack.UnpackException) as exc:
            raise errors.SerializeError(f"malformed taggerhub message: {exc}") from None

    def loads(self, data: Any) -> Any:
        return self._unframe(data)

    def loadsCall(self, data: Any) -> Any:
        return self._unframe(data)


class RefusedSerializer(serializers.MarshalSerializer):
    """Stands in for marshal on the server: answers every request with a clear refusal."""

    message = "the marshal serializer is refused by this server (unsafe); use msgpack, serpent or json"

    def loads(self, data: Any) -> Any:
        raise errors.SecurityError(self.message)

    def loadsCall(self, data: Any) -> Any:
        raise errors.SecurityError(self.message)

    def dumps(self, data: Any) -> bytes:
        # Only error texts are ever sent back with this id.
        return marshal.dumps(data if isinstance(data, str) else str(data))


class FastConnection(socketutil.SocketConnection):
    """A Pyro5 connection tuned for request/response on loopback and LAN.

    - Small reads are served from a read-ahead buffer, so a whole small message
      (Pyro5 asks for it in three reads) usually costs one system call.
    - Large messages are received straight into one uninitialised buffer.
    - :class:`Gather` messages are sent with vectored writes, without joining.
    Only used with Pyro5's thread-per-connection server and by proxies, where one
    thread at a time reads a connection.
    """

    _pending: bytes = b""

    def send(self, data: Any) -> None:
        if not isinstance(data, Gather):
            return super().send(data)
        views = [memoryview(p).cast("B") for p in data.parts]
        try:
            if hasattr(self.sock, "getpeercert"):  # TLS: no sendmsg, send part by part
                for v in views:
                    self.sock.sendall(v)
                return None
            while views:
                sent = self.sock.sendmsg(views[:512])
                while views and sent >= views[0].nbytes:
                    sent -= views[0].nbytes
                    views.pop(0)
                if sent:
                    views[0] = views[0][sent:]
        except TimeoutError:
            raise errors.TimeoutError("sending: timeout") from None
        except OSError as exc:
            raise errors.ConnectionClosedError(f"sending: connection lost: {exc}") from None
        return None

    def recv(self, size: int) -> Any:
        try:
            if size < RECV_INTO_THRESHOLD:
                return self._recv_small(size)
            return self._recv_large(size)
        except TimeoutError:
            raise errors.TimeoutError("receiving: timeout") from None
        except errors.ConnectionClosedError:
            raise
        except OSError as exc:
            raise errors.ConnectionClosedError(f"receiving: connection lost: {exc}") from None

    def read_message(self) -> tuple[bytes, tuple, Any]:
        """One whole Pyro5 message as (raw header, header fields, annotations + payload).

        The per-call paths use this instead of Pyro5's three reads and message object;
        it checks what Pyro5's ReceivingMessage checks: tag, version, magic and size limit.
        """
        pending = self._pending
        if len(pending) < PYRO_HEADER.size:
            pending = self._fill(PYRO_HEADER.size)
        fields = PYRO_HEADER.unpack_from(pending)
        if fields[0] != _PYRO_TAG or fields[1] != protocol.PROTOCOL_VERSION or fields[10] != protocol._magic_number:
            raise errors.ProtocolError("invalid message or protocol version")
        size = fields[6] + fields[7]
        if size > pyro_config.MAX_MESSAGE_SIZE:
            raise errors.ProtocolError(f"message too large ({size:d}, max={pyro_config.MAX_MESSAGE_SIZE:d})")
        end = PYRO_HEADER.size + size
        if len(pending) >= end:  # the usual small message: already read whole
            self._pending = pending[end:]
            return pending[:PYRO_HEADER.size], fields, pending[PYRO_HEADER.size:end]
        self._pending = pending[PYRO_HEADER.size:]
        return pending[:PYRO_HEADER.size], fields, self.recv(size)

    def send_message(self, msgtype: int, flags: int, seq: int, serializer_id: int, payload: Any,
                     correlation_id: bytes | None = None) -> None:
        """Send one Pyro5 message without annotations (what Pyro5's SendingMessage would send)."""
        size = len(payload)
        if size > pyro_config.MAX_MESSAGE_SIZE:
            raise errors.ProtocolError(f"message too large ({size:d}, max={pyro_config.MAX_MESSAGE_SIZE:d})")
        if correlation_id:
            flags |= protocol.FLAGS_CORR_ID
        header = PYRO_HEADER.pack(_PYRO_TAG, protocol.PROTOCOL_VERSION, msgtype, serializer_id, flags, seq, size, 0,
                                  correlation_id or _NO_CORRELATION, 0, protocol._magic_number)
        if type(payload) is bytes:
            try:
                self.sock.sendall(header + payload)
            except TimeoutError:
                raise errors.TimeoutError("sending: timeout") from None
            except OSError as exc:
                raise errors.ConnectionClosedError(f"sending: connection lost: {exc}") from None
        else:
            self.send(header + payload)

    def unread(self, data: bytes) -> None:
        """Put bytes back in front of the stream (a fast path handing a message to the general one)."""
        self._pending = bytes(data) + self._pending

    def _recv_small(self, size: int) -> bytes:
        pending = self._fill(size)
        self._pending = pending[size:]
        return pending[:size] if len(pending) != size else pending

    def _fill(self, size: int) -> bytes:
        """Read ahead until at least ``size`` bytes are pending; return them all."""
        pending = self._pending
        try:
            while len(pending) < size:
                chunk = self.sock.recv(READ_AHEAD)
                if not chunk:
                    raise errors.ConnectionClosedError("receiving: connection lost")
                pending = pending + chunk if pending else chunk
        except TimeoutError:
            raise errors.TimeoutError("receiving: timeout") from None
        except OSError as exc:
            raise errors.ConnectionClosedError(f"receiving: connection lost: {exc}") from None
        finally:
            self._pending = pending  # bytes read before an error stay readable
        return pending

    def _recv_large(self, size: int) -> np.ndarray:
        buffer = np.empty(size, dtype=np.uint8)  # uninitialised: the kernel's copy is the only write
        view = memoryview(buffer)
        got = len(self._pending)
        view[:got] = self._pending
        self._pending = b""
        flags = 0 if hasattr(self.sock, "getpeercert") else socket.MSG_WAITALL
        while got < size:
            n = self.sock.recv_into(view[got:], size - got, flags)
            if n == 0:
                raise errors.ConnectionClosedError("receiving: not enough data")
            got += n
        return buffer


def speed_up(connection: Any) -> None:
    """Give an established Pyro5 connection vectored sends and in-place receives."""
    if type(connection) is socketutil.SocketConnection:
        connection.__class__ = FastConnection


def install(server: bool = False) -> None:
    """Register the array codecs and the taggerhub serializer; on a server, also refuse marshal."""
    with _install_lock:
        if not _installed.get("codecs"):
            serializers.SerializerBase.register_class_to_dict(np.ndarray, encode_npy_base64, serpent_too=True)
            serializers.SerializerBase.register_dict_to_class(NDARRAY_CLASS, decode_ndarray)
            for scalar in {t for t in np.sctypeDict.values() if issubclass(t, np.number | np.bool_)}:
                # NumPy scalars travel as plain numbers, as the vendor library returns them.
                serializers.SerpentSerializer.register_type_replacement(scalar, _numpy_scalar_to_python)
            for name, serializer in (("msgpack", NumpyMsgpackSerializer()), ("taggerhub", TaggerhubSerializer()),
                                     ("json", NumpyJsonSerializer())):
                serializers.serializers[name] = serializer
                serializers.serializers_by_id[serializer.serializer_id] = serializer
            _installed["codecs"] = True
        if server and not _installed.get("server"):
            refused = RefusedSerializer()
            serializers.serializers["marshal"] = refused
            serializers.serializers_by_id[refused.serializer_id] = refused
            _installed["server"] = True
