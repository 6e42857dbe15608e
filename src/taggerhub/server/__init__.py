"""The taggerhub server: the Pyro5 daemon, sessions, the object table and the call path.

:mod:`.app` builds and runs it; :mod:`.hub` wires the parts; the parts each have a module.
"""
