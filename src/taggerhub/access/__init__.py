"""Who may do what: users and tokens, the rules table, the control lease, audit, TLS and certificates.

Nothing here knows sockets or Pyro5: the server asks :class:`.policy.Access` and acts on the answer.
"""
