"""How values cross the wire: NumPy arrays per serializer, and which serializers are allowed.

- ``taggerhub`` (the default of taggerhub's client): msgpack for the structure,
  arrays out of band as raw bytes after it (a :class:`Gather` when large, which
  :class:`~taggerhub.wire.connection.FastConnection` sends without joining).
- ``msgpack``: arrays as raw bytes inside msgpack (no base64).
- ``serpent`` and ``json`` (the vendor's TimeTaggerRPC client): arrays in the
  vendor's format, an ``.npy`` file in base64, so its client decodes them.
- ``marshal`` is refused on the server: it is not safe on untrusted input
  (pickle is not offered by Pyro5 at all).

:func:`install` registers them with Pyro5; it is idempotent and must run in every
taggerhub process before the first proxy or daemon is used.
"""

from __future__ import annotations

import base64
import io
import marshal
import re
import struct
import threading
from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np
from Pyro5 import errors

from . import pyro_compat

NDARRAY_CLASS = "numpy.ndarray"
TAGGERHUB_SERIALIZER_ID = 84  # 'T'; Pyro5 uses 1-4 for its own serializers
GATHER_THRESHOLD = 64 * 1024  # below this, one contiguous bytes object is cheaper than sendmsg
ALIGN = 64
_LENGTH = struct.Struct("!I")
_NDARRAY_MARK = NDARRAY_CLASS.encode()
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


class NumpyMsgpackSerializer(pyro_compat.MsgpackSerializer):
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


class NumpyJsonSerializer(pyro_compat.JsonSerializer):
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
        # Pyro5's SendingMessage prepends its header with `header + payload` (pyro_compat); keep the parts apart.
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


# Under NumPy 2 a numpy float (a float subclass) reaches serpent's float writer and is written as its repr,
# ``np.float64(0.1)``, which no serpent reader accepts: the vendor's client sends that for a setting computed with
# NumPy (``setTriggerLevel(1, np.float64(-0.01))``). Only the number inside is kept; nothing else is evaluated.
NUMPY_FLOAT_REPR = re.compile(rb"\bnp\.(?:float(?:16|32|64|128)?|longdouble|half|single|double)\(([-+0-9.eE]+|-?inf)\)")


class NumpyTolerantSerpentSerializer(pyro_compat.SerpentSerializer):
    """serpent, also as the vendor's client writes it under NumPy 2 (numpy floats as ``np.float64(x)``)."""

    def loads(self, data: Any) -> Any:
        return self._retried(super().loads, data)

    def loadsCall(self, data: Any) -> Any:
        return self._retried(super().loadsCall, data)

    @staticmethod
    def _retried(load: Any, data: Any) -> Any:
        try:
            return load(data)
        except ValueError as exc:  # ast's "malformed node or string": read again with the numpy floats unwrapped
            raw = bytes(data)
            plain = NUMPY_FLOAT_REPR.sub(rb"\1", raw)
            if plain == raw:
                raise errors.SerializeError(f"unreadable serpent message (not a Python literal): {exc}") from None
            return load(plain)


class MarshalRefused(errors.SecurityError, errors.CommunicationError):
    """The marshal serializer is refused: a security refusal that clients see as a communication error."""


class RefusedSerializer(pyro_compat.MarshalSerializer):
    """Stands in for marshal on the server: answers every request with a clear refusal."""

    message = "the marshal serializer is refused by this server (unsafe); use msgpack, serpent or json"

    def loads(self, data: Any) -> Any:
        raise MarshalRefused(self.message)

    def loadsCall(self, data: Any) -> Any:
        raise MarshalRefused(self.message)

    def dumps(self, data: Any) -> bytes:
        # Only error texts are ever sent back with this id.
        return marshal.dumps(data if isinstance(data, str) else str(data))


def install(server: bool = False) -> None:
    """Register the array codecs and the taggerhub serializer; on a server, also refuse marshal."""
    with _install_lock:
        if not _installed.get("codecs"):
            pyro_compat.SerializerBase.register_class_to_dict(np.ndarray, encode_npy_base64, serpent_too=True)
            pyro_compat.SerializerBase.register_dict_to_class(NDARRAY_CLASS, decode_ndarray)
            for scalar in {t for t in np.sctypeDict.values() if issubclass(t, np.number | np.bool_)}:
                # NumPy scalars travel as plain numbers, as the vendor library returns them.
                pyro_compat.SerpentSerializer.register_type_replacement(scalar, _numpy_scalar_to_python)
            for name, serializer in (("msgpack", NumpyMsgpackSerializer()), ("taggerhub", TaggerhubSerializer()),
                                     ("json", NumpyJsonSerializer()), ("serpent", NumpyTolerantSerpentSerializer())):
                pyro_compat.register_serializer(name, serializer)
            _installed["codecs"] = True
        if server and not _installed.get("server"):
            pyro_compat.register_serializer("marshal", RefusedSerializer())
            _installed["server"] = True
