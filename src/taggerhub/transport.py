"""How values cross the wire: NumPy arrays per serializer, and which serializers are allowed.

- msgpack (taggerhub's client): arrays travel as raw bytes with dtype and shape,
  no base64 and no ``.npy`` container.
- serpent and json (the vendor's TimeTaggerRPC client): arrays travel in the
  vendor's format, an ``.npy`` file in base64, so its client decodes them.
- marshal is refused on the server: it is not safe on untrusted input (pickle
  is not offered by Pyro5 at all).

:func:`install` is idempotent and must run in every taggerhub process before
the first proxy or daemon is used.
"""

from __future__ import annotations

import base64
import io
import marshal
import threading
from typing import Any

import numpy as np
from Pyro5 import errors, serializers

NDARRAY_CLASS = "numpy.ndarray"
_install_lock = threading.Lock()
_installed: dict[str, bool] = {}


def encode_npy_base64(array: np.ndarray) -> dict[str, Any]:
    """Vendor TimeTaggerRPC format: the array as an .npy file, base64 text."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return {"__class__": NDARRAY_CLASS, "data": base64.b64encode(buffer.getvalue()).decode("ascii")}


def decode_ndarray(classname: str, data: dict[str, Any]) -> np.ndarray:
    """Rebuild an array from either wire format (raw bytes or vendor base64 .npy)."""
    if "raw" in data:
        dtype = np.dtype(data["dtype"])
        if dtype.hasobject:
            raise errors.SerializeError("object arrays are not accepted")
        raw = data["raw"]
        array = np.frombuffer(raw, dtype=dtype).reshape(data["shape"])
        return array.copy()  # writable, like the vendor library's arrays
    payload = data["data"]
    if isinstance(payload, str):
        payload = payload.encode("ascii")
    return np.load(io.BytesIO(base64.b64decode(payload)), allow_pickle=False)


class NumpyMsgpackSerializer(serializers.MsgpackSerializer):
    """msgpack with arrays as raw bytes and NumPy scalars as plain numbers."""

    def default(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise errors.SerializeError("object arrays cannot be sent")
            contiguous = np.ascontiguousarray(obj)
            return {
                "__class__": NDARRAY_CLASS,
                "dtype": contiguous.dtype.str,
                "shape": list(contiguous.shape),
                "raw": memoryview(contiguous).cast("B") if contiguous.size else b"",
            }
        if isinstance(obj, np.generic):
            return obj.item()
        return super().default(obj)

    def object_hook(self, obj: Any) -> Any:
        # Decode arrays here, not via the class registry, so another library's
        # ndarray hook in the same process (the vendor client's) cannot shadow ours.
        if obj.get("__class__") == NDARRAY_CLASS and "raw" in obj:
            return decode_ndarray(NDARRAY_CLASS, obj)
        return super().object_hook(obj)


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


def install(server: bool = False) -> None:
    """Register the array codecs; on a server, also refuse marshal."""
    with _install_lock:
        if not _installed.get("codecs"):
            serializers.SerializerBase.register_class_to_dict(np.ndarray, encode_npy_base64, serpent_too=True)
            serializers.SerializerBase.register_dict_to_class(NDARRAY_CLASS, decode_ndarray)
            msgpack_serializer = NumpyMsgpackSerializer()
            serializers.serializers["msgpack"] = msgpack_serializer
            serializers.serializers_by_id[msgpack_serializer.serializer_id] = msgpack_serializer
            _installed["codecs"] = True
        if server and not _installed.get("server"):
            refused = RefusedSerializer()
            serializers.serializers["marshal"] = refused
            serializers.serializers_by_id[refused.serializer_id] = refused
            _installed["server"] = True
