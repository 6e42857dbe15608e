"""Talk to a plain vendor TimeTaggerRPC server when taggerhub's own serializer is not understood.

The vendor's server is a bare Pyro5 daemon: it knows Pyro5's serializers only, and on
taggerhub's (id 84) it closes the connection without a word. A lab user pointing
taggerhub's client at such a server wants the script to run, so the library proxy
connects again with ``serpent`` (what the vendor's client uses; arrays as base64 ``.npy``,
which :mod:`taggerhub.wire.codecs` reads) and says once, as a warning, what it did and
what does not apply there. Every proxy returned later inherits the serializer.
"""

from __future__ import annotations

import warnings
from typing import Any

import Pyro5.errors

from .explain import HandshakeClosed

VENDOR_SERIALIZER = "serpent"


class VendorServerWarning(UserWarning):
    """The server is a plain TimeTaggerRPC server: taggerhub's extras are not available there."""


def bind(proxy: Any) -> None:
    """Connect ``proxy``; if the server drops taggerhub's handshake unread, retry as the vendor's client does."""
    try:
        proxy._pyroBind()
        return
    except (Pyro5.errors.ConnectionClosedError, HandshakeClosed) as first:
        if proxy._taggerhub_ssl is not None or proxy._pyroSerializer == VENDOR_SERIALIZER:
            raise  # a TLS server is not the vendor's, and serpent was already refused: nothing to fall back to
        location = proxy._pyroUri.location
        proxy._pyroRelease()
        token_given = bool(proxy._pyroHandshake.get("token"))
        proxy._pyroSerializer = VENDOR_SERIALIZER
        proxy._pyroHandshake = {}  # a token is for taggerhub servers only: never hand it to another server
        try:
            proxy._pyroBind()
        # Any other answer is the server's own: raised as is.
        except (Pyro5.errors.ConnectionClosedError, HandshakeClosed) as second:
            raise Pyro5.errors.CommunicationError(
                f"the server at {location} closed the connection during the Pyro5 handshake "
                f"(taggerhub serializer: {first}; vendor serializer: {second}); "
                "check that host and port name a taggerhub or TimeTaggerRPC server") from second
    what = ("a plain TimeTaggerRPC server (not taggerhub): using the vendor's protocol (serpent, slower "
            "array transfer); no users, roles, lease or taggerhub calls there")
    if token_given:
        what += "; the token was not sent, because this server does not check one"
    warnings.warn(f"{location} is {what}", VendorServerWarning, stacklevel=4)
