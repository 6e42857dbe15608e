"""The taggerhub client: ``createProxy`` gives a module-like proxy of a served Time Tagger library.

``from taggerhub import client; TT = client.createProxy(...)`` is the whole API, as with the vendor's
``TimeTaggerRPC.client``.
"""

from .proxy import LibraryProxy, Proxy, RemoteMethod, createProxy
from .tagstream import TagStream

__all__ = ["LibraryProxy", "Proxy", "RemoteMethod", "TagStream", "createProxy"]
