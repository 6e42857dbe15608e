"""What travels between client and server: codecs, the connection class, addresses, name-server naming.

The lowest layer beside :mod:`taggerhub.sim`: it knows Pyro5's wire protocol and nothing of
devices, users or sessions. Modules: :mod:`.codecs` (serializers and their registration),
:mod:`.connection` (``FastConnection``), :mod:`.addresses` (``HOST:PORT``, the library URI,
peer text), :mod:`.naming` (the lab's name server), and :mod:`.pyro_compat` (every Pyro5 internal
taggerhub relies on).
"""
