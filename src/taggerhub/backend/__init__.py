"""The Time Tagger library being served: pick the vendor's or the simulator, and reflect it.

:mod:`.loader` chooses the module; :mod:`.adapter` turns its public names into the remote
surface (the allow-list of what may be called at all).
"""
