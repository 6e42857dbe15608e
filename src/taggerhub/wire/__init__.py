"""What travels between client and server: codecs, the connection class, Pyro5 name-server naming.

The lowest layer beside :mod:`taggerhub.sim`: it knows Pyro5's wire protocol and nothing of
devices, users or sessions.
"""
