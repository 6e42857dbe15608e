"""Old home of the codecs and the connection class, kept so that ``from ..wire import transport`` works.

Split into :mod:`.codecs` (serializers, :func:`~.codecs.install`) and :mod:`.connection`
(:class:`~.connection.FastConnection`, :func:`~.connection.speed_up`). New code imports those;
this module only re-exports what ``server/``, ``lab/``, tests and benchmarks still use here.
"""

from __future__ import annotations

from .codecs import (
    ALIGN,
    GATHER_THRESHOLD,
    NDARRAY_CLASS,
    TAGGERHUB_SERIALIZER_ID,
    Gather,
    NumpyJsonSerializer,
    NumpyMsgpackSerializer,
    RefusedSerializer,
    TaggerhubSerializer,
    decode_ndarray,
    encode_npy_base64,
    install,
)
from .connection import PYRO_HEADER, READ_AHEAD, RECV_INTO_THRESHOLD, FastConnection, speed_up

__all__ = [
    "ALIGN", "GATHER_THRESHOLD", "NDARRAY_CLASS", "PYRO_HEADER", "READ_AHEAD", "RECV_INTO_THRESHOLD",
    "TAGGERHUB_SERIALIZER_ID", "FastConnection", "Gather", "NumpyJsonSerializer", "NumpyMsgpackSerializer",
    "RefusedSerializer", "TaggerhubSerializer", "decode_ndarray", "encode_npy_base64", "install", "speed_up",
]
