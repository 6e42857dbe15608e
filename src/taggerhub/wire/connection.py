"""The connection class: Pyro5's socket connection with read-ahead, vectored sends and whole-message I/O.

:class:`FastConnection` replaces Pyro5's ``SocketConnection`` on established connections
(:func:`speed_up`) and on the client's TLS connections, and gives the per-call paths of
client and server :meth:`~FastConnection.read_message` and :meth:`~FastConnection.send_message`,
which pack and parse Pyro5's header directly (its layout: :mod:`.pyro_compat`).
"""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
from Pyro5 import config as pyro_config
from Pyro5 import errors, protocol

from . import pyro_compat
from .codecs import Gather

RECV_INTO_THRESHOLD = 64 * 1024
READ_AHEAD = 64 * 1024
PYRO_HEADER = pyro_compat.HEADER
_PYRO_TAG = pyro_compat.HEADER_TAG
_NO_CORRELATION = pyro_compat.NO_CORRELATION


class FastConnection(pyro_compat.SocketConnection):
    """A Pyro5 connection tuned for request/response on loopback and LAN.

    - Small reads are served from a read-ahead buffer, so a whole small message
      (Pyro5 asks for it in three reads, see pyro_compat) usually costs one system call.
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
        if (fields[pyro_compat.F_TAG] != _PYRO_TAG or fields[pyro_compat.F_VERSION] != pyro_compat.PROTOCOL_VERSION
                or fields[pyro_compat.F_MAGIC] != pyro_compat.MAGIC_NUMBER):
            raise errors.ProtocolError("invalid message or protocol version")
        size = fields[pyro_compat.F_DATA_SIZE] + fields[pyro_compat.F_ANNOTATIONS_SIZE]
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
        header = PYRO_HEADER.pack(_PYRO_TAG, pyro_compat.PROTOCOL_VERSION, msgtype, serializer_id, flags, seq, size, 0,
                                  correlation_id or _NO_CORRELATION, 0, pyro_compat.MAGIC_NUMBER)
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
    if type(connection) is pyro_compat.SocketConnection:
        connection.__class__ = FastConnection
